/* SPDX-License-Identifier: MIT */
/*
 * kvcache.h - the paged KV cache's block pool: allocation, per-sequence
 * block tables, reference counts, prefix caching and copy-on-write.
 *
 * One pool per loaded language model. Storage is carved into blocks of
 * geom.block_tokens positions (kernels/llm/attention.h has the layout);
 * a sequence's block table maps its positions to blocks, the same table
 * for every layer.
 *
 * Block states:
 *   free    ref == 0, not hashed: on the free list.
 *   used    ref  > 0: in at least one live block table (maybe hashed).
 *   cached  ref == 0, hashed: its K/V stay valid and findable through the
 *           prefix map, on an LRU list; it is evicted (unhashed and reused)
 *           only when a fresh block is needed and the free list is empty,
 *           least recently freed first.
 *
 * Prefix caching: a full block's key is XXH3-128(seed, parent key, its
 * block_tokens token ids), chained from the sequence's first block, so a
 * key names the whole prefix up to the end of the block. A lookup also
 * compares the stored parent key and token ids, so only a 128-bit
 * collision of an ancestor's key could alias two prefixes; the seed is
 * random per pool, so clients cannot aim for one.
 *
 * Threading: the pool and its sequences are owned by the one scheduler
 * thread of their model; nothing here locks.
 */
#ifndef COPRO_KVCACHE_H
#define COPRO_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm/attention.h"

#define COPRO_KVC_NIL	UINT32_MAX	/* no block */

struct copro_kvc_key {
	uint64_t lo, hi;
};

/* Per-block bookkeeping (the K/V themselves are in the view). */
struct copro_kvc_block {
	uint32_t ref;			/* block tables holding it */
	uint32_t hashed;		/* 1: in the prefix map under key */
	uint32_t hnext;			/* next block in the same map bucket */
	uint32_t prev, next;		/* LRU list when cached; next = free list link when free */
	uint32_t fill;			/* slots handed out since it was allocated */
	uint32_t pad;
	struct copro_kvc_key key;	/* valid when hashed */
	struct copro_kvc_key parent;	/* key of the block before it in its prefix */
};

struct copro_kvc {
	struct copro_kv_geom geom;
	struct copro_kv_view view;	/* what the kernels read and write */
	void *mem;			/* mmap of the K then V storage */
	size_t mem_bytes;
	uint32_t n_blocks;
	struct copro_kvc_block *blocks;	/* (n_blocks) */
	int32_t *tokens;		/* (n_blocks, block_tokens) token ids of hashed blocks */
	uint32_t *buckets;		/* (map_mask + 1) heads of the prefix map's chains */
	uint32_t map_mask;
	uint32_t free_head;		/* free list (a stack) */
	uint32_t lru_head, lru_tail;	/* cached blocks: most recently freed at the head */
	uint32_t n_free, n_cached;
	uint64_t seed;
	uint8_t *hbuf;			/* (32 + 4 * block_tokens) bytes hashed per key */
	/* counters */
	uint64_t q_tokens, hit_tokens;	/* prompt tokens looked up / found */
	uint64_t q_blocks, hit_blocks;	/* full prompt blocks eligible / found */
	uint64_t evictions, cow_copies;
	/* External storage (a GPU's): copy-on-write goes through its owner. */
	int (*copy)(void *ctx, uint32_t dst, uint32_t src);
	void *copy_ctx;
};

/*
 * A sequence's view of the pool. Initialize with copro_kvc_seq_init();
 * the pool owns nothing of it, so the caller frees it with
 * copro_kvc_seq_free() before destroying the pool.
 */
struct copro_kvc_seq {
	uint32_t *table;		/* (cap) block ids */
	uint32_t n_blocks;		/* entries of table in use: ceil(n_tokens / block_tokens) */
	uint32_t cap;
	uint32_t n_tokens;		/* positions with room (appended) */
	uint32_t n_committed;		/* positions whose token ids were committed */
	int32_t *tail;			/* (block_tokens) committed ids of the unfinished block */
	struct copro_kvc_key parent;	/* key of the last full committed block; 0 at start */
};

struct copro_kvc_stats {
	uint32_t total, used, cached, free;	/* used + cached + free == total */
	uint32_t block_tokens;
	uint64_t live_slots;		/* positions in use in used blocks (shared ones once) */
	double utilization;		/* live_slots / (used * block_tokens); 0 when none used */
	uint64_t q_tokens, hit_tokens, q_blocks, hit_blocks;
	uint64_t evictions, cow_copies;
};

/*
 * Creates a pool of as many blocks of geometry g as fit in bytes (the K/V
 * storage alone: the bookkeeping, about 64 + 4 * block_tokens bytes a
 * block, comes on top). The storage is an anonymous mapping advised for
 * huge pages, page-aligned, zero-filled lazily. Returns 0 and *out, or
 * -EINVAL (a zero geometry field), -ENOSPC (bytes hold no block),
 * -EOVERFLOW or -ENOMEM; on error, err (if not NULL) says why.
 */
int copro_kvc_create(struct copro_kvc **out, const struct copro_kv_geom *g, size_t bytes,
		     char *err, size_t errlen);
/*
 * The same over storage someone else owns and laid out as view says (device
 * memory: the pool never touches it, and copy-on-write calls copy(ctx, dst,
 * src) to copy a block in every layer). view->n_blocks blocks.
 */
int copro_kvc_create_external(struct copro_kvc **out, const struct copro_kv_geom *g,
			      const struct copro_kv_view *view,
			      int (*copy)(void *ctx, uint32_t dst, uint32_t src), void *copy_ctx,
			      char *err, size_t errlen);
void copro_kvc_destroy(struct copro_kvc *kvc);

/*
 * Faults in every page of the pool's storage (nothing for external
 * storage), so that no forward step pays the first touch: a step writing
 * K/V into fresh huge pages spent as long zeroing them as computing. Call
 * it from the thread whose memory policy should place the pages, after any
 * mbind. Returns 0 (touching pages one by one when MADV_POPULATE_WRITE is
 * not there), or -ENOMEM, touching nothing, when the pool is larger than
 * the memory the kernel reports available (the pool then fills lazily, as
 * before), or when populating failed.
 */
int copro_kvc_prefault(struct copro_kvc *kvc);

/* Bytes one block takes (K and V); 0 on a zero field or overflow. */
size_t copro_kvc_block_bytes(const struct copro_kv_geom *g);

/* The view the attention kernels take. */
static inline const struct copro_kv_view *copro_kvc_view(const struct copro_kvc *kvc)
{
	return &kvc->view;
}

/* Returns 0, or -ENOMEM. seq is empty afterwards. */
int copro_kvc_seq_init(struct copro_kvc *kvc, struct copro_kvc_seq *seq);

/*
 * Drops the sequence's references and frees its memory, leaving it
 * zeroed: freeing twice, or freeing a zeroed or empty sequence, is safe.
 * Blocks whose last reference goes become cached if hashed (their K/V
 * stay findable) and free otherwise. A sequence's blocks are released
 * from its last to its first, so its deepest blocks are evicted first and
 * a prefix is never cut above blocks that are still cached.
 */
void copro_kvc_seq_free(struct copro_kvc *kvc, struct copro_kvc_seq *seq);

/*
 * On an empty sequence, finds the longest run of full blocks of the
 * prompt tokens[0..n) whose K/V are cached, takes a reference on each and
 * puts them in the table. Never takes all of a prompt: at most
 * (n - 1) / block_tokens blocks, so at least the last token is computed
 * and the model yields its logits (a prompt of exactly 2 blocks reuses 1
 * and computes 16 tokens). Returns the number of tokens now present (a
 * multiple of block_tokens; n_tokens and n_committed are set to it), or
 * -EINVAL (sequence not empty) or -ENOMEM (nothing taken).
 */
int copro_kvc_seq_match_prefix(struct copro_kvc *kvc, struct copro_kvc_seq *seq,
			       const int32_t *tokens, uint32_t n);

/*
 * Fresh blocks copro_kvc_seq_append(seq, n) would take: new blocks plus
 * one if the last block must first be copied (shared and partly filled).
 */
uint32_t copro_kvc_blocks_needed(const struct copro_kvc *kvc, const struct copro_kvc_seq *seq,
				 uint32_t n);

/*
 * Makes room for n more positions. If the last block is partly filled
 * and shared (ref > 1, after copro_kvc_seq_fork) or hashed, it is first
 * copied - K and V of every layer - into a fresh block, so writes never
 * reach another sequence's positions. Returns 0, or -ENOSPC when the pool
 * cannot supply the blocks, -ENOMEM or -EOVERFLOW; on error the sequence
 * and the pool are as they were.
 */
int copro_kvc_seq_append(struct copro_kvc *kvc, struct copro_kvc_seq *seq, uint32_t n);

/*
 * Records the token ids of the next n positions (after the caller wrote
 * their K/V) and registers each block this fills in the prefix map, keyed
 * by its chained hash. A block whose key is already mapped to another
 * block (the same prefix computed twice) stays unhashed. Returns 0, or
 * -EINVAL when fewer than n appended positions await their ids.
 */
int copro_kvc_seq_commit(struct copro_kvc *kvc, struct copro_kvc_seq *seq,
			 const int32_t *tokens, uint32_t n);

/*
 * Makes the empty sequence dst share all of src's blocks (parallel
 * sampling): a reference on each, copies of the ids. The first append to
 * a shared, partly filled block copies it. Returns 0, -EINVAL (dst not
 * empty) or -ENOMEM.
 */
int copro_kvc_seq_fork(struct copro_kvc *kvc, struct copro_kvc_seq *dst,
		       const struct copro_kvc_seq *src);

/* Blocks allocatable now: free plus evictable cached. */
static inline uint32_t copro_kvc_free_blocks(const struct copro_kvc *kvc)
{
	return kvc->n_free + kvc->n_cached;
}

/*
 * Whether a new sequence of n_tokens positions fits and still leaves
 * watermark free blocks for the running ones to grow into.
 */
bool copro_kvc_can_admit(const struct copro_kvc *kvc, uint32_t n_tokens, uint32_t watermark);

/* Fills st by walking every block (O(n_blocks): for status, not the hot path). */
void copro_kvc_stats(const struct copro_kvc *kvc, struct copro_kvc_stats *st);

/*
 * Checks the pool's own invariants (lists, counts, prefix map). Returns 0,
 * or -EUCLEAN naming nothing: for tests and debug builds.
 */
int copro_kvc_check(const struct copro_kvc *kvc);

#endif
