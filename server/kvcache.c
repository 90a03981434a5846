// SPDX-License-Identifier: MIT
/*
 * kvcache.c - the paged KV cache's block pool (see kvcache.h for the block
 * states and the prefix keys). Owned by one scheduler thread: no locks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "kvcache.h"

#define NIL	COPRO_KVC_NIL

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

size_t copro_kvc_block_bytes(const struct copro_kv_geom *g)
{
	size_t bf = copro_kv_block_floats(g), bytes;

	if (!bf || __builtin_mul_overflow(bf, 2 * sizeof(float), &bytes))
		return 0;
	return bytes;
}

/* ---- lists and the prefix map ------------------------------------------- */

static void free_push(struct copro_kvc *kvc, uint32_t b)
{
	kvc->blocks[b].next = kvc->free_head;
	kvc->blocks[b].prev = NIL;
	kvc->blocks[b].fill = 0;
	kvc->free_head = b;
	kvc->n_free++;
}

static void lru_push_head(struct copro_kvc *kvc, uint32_t b)
{
	struct copro_kvc_block *blk = &kvc->blocks[b];

	blk->prev = NIL;
	blk->next = kvc->lru_head;
	if (kvc->lru_head != NIL)
		kvc->blocks[kvc->lru_head].prev = b;
	else
		kvc->lru_tail = b;
	kvc->lru_head = b;
	kvc->n_cached++;
}

static void lru_unlink(struct copro_kvc *kvc, uint32_t b)
{
	struct copro_kvc_block *blk = &kvc->blocks[b];

	if (blk->prev != NIL)
		kvc->blocks[blk->prev].next = blk->next;
	else
		kvc->lru_head = blk->next;
	if (blk->next != NIL)
		kvc->blocks[blk->next].prev = blk->prev;
	else
		kvc->lru_tail = blk->prev;
	blk->prev = blk->next = NIL;
	kvc->n_cached--;
}

static int key_eq(struct copro_kvc_key a, struct copro_kvc_key b)
{
	return a.lo == b.lo && a.hi == b.hi;
}

/* Returns the key of a full block of tokens following the block keyed parent. */
static struct copro_kvc_key block_key(struct copro_kvc *kvc, struct copro_kvc_key parent,
				      const int32_t *tokens)
{
	size_t nt = (size_t)kvc->geom.block_tokens * sizeof(int32_t);
	struct copro_kvc_key k;
	XXH128_hash_t h;

	memcpy(kvc->hbuf, &parent.lo, 8);
	memcpy(kvc->hbuf + 8, &parent.hi, 8);
	memcpy(kvc->hbuf + 16, tokens, nt);
	h = XXH3_128bits_withSeed(kvc->hbuf, 16 + nt, kvc->seed);
	k.lo = h.low64;
	k.hi = h.high64;
	return k;
}

/*
 * Returns the hashed block holding exactly (parent, tokens) under key, or
 * NIL. Comparing the parent key and the ids, not just the key, leaves
 * only a 128-bit collision of an ancestor to alias two prefixes.
 */
static uint32_t map_find(const struct copro_kvc *kvc, struct copro_kvc_key key,
			 struct copro_kvc_key parent, const int32_t *tokens)
{
	size_t nt = (size_t)kvc->geom.block_tokens;

	for (uint32_t b = kvc->buckets[key.lo & kvc->map_mask]; b != NIL;
	     b = kvc->blocks[b].hnext) {
		const struct copro_kvc_block *blk = &kvc->blocks[b];

		if (key_eq(blk->key, key) && key_eq(blk->parent, parent) &&
		    !memcmp(kvc->tokens + b * nt, tokens, nt * sizeof(int32_t)))
			return b;
	}
	return NIL;
}

static void map_insert(struct copro_kvc *kvc, uint32_t b)
{
	uint32_t *head = &kvc->buckets[kvc->blocks[b].key.lo & kvc->map_mask];

	kvc->blocks[b].hnext = *head;
	*head = b;
	kvc->blocks[b].hashed = 1;
}

static void map_remove(struct copro_kvc *kvc, uint32_t b)
{
	uint32_t *link = &kvc->buckets[kvc->blocks[b].key.lo & kvc->map_mask];

	while (*link != b)
		link = &kvc->blocks[*link].hnext;
	*link = kvc->blocks[b].hnext;
	kvc->blocks[b].hnext = NIL;
	kvc->blocks[b].hashed = 0;
}

/*
 * Returns a block with one reference: a free one, else the least recently
 * freed cached one (evicted from the map), else NIL. Callers check
 * copro_kvc_free_blocks() first, so NIL is a bug of theirs.
 */
static uint32_t block_alloc(struct copro_kvc *kvc)
{
	uint32_t b = kvc->free_head;

	if (b != NIL) {
		kvc->free_head = kvc->blocks[b].next;
		kvc->n_free--;
	} else if ((b = kvc->lru_tail) != NIL) {
		lru_unlink(kvc, b);
		map_remove(kvc, b);
		kvc->evictions++;
	} else {
		return NIL;
	}
	kvc->blocks[b].ref = 1;
	kvc->blocks[b].fill = 0;
	kvc->blocks[b].prev = kvc->blocks[b].next = NIL;
	return b;
}

/* Takes a reference, reviving a cached block (out of the LRU list). */
static void block_get(struct copro_kvc *kvc, uint32_t b)
{
	if (kvc->blocks[b].ref++ == 0)
		lru_unlink(kvc, b);
}

/* Drops a reference; the last one makes the block cached if hashed, else free. */
static void block_put(struct copro_kvc *kvc, uint32_t b)
{
	if (--kvc->blocks[b].ref)
		return;
	if (kvc->blocks[b].hashed)
		lru_push_head(kvc, b);
	else
		free_push(kvc, b);
}

/* ---- the pool ------------------------------------------------------------ */

static int kvc_create(struct copro_kvc **out, const struct copro_kv_geom *g, size_t bytes,
		      const struct copro_kv_view *ext, char *err, size_t errlen);

int copro_kvc_create(struct copro_kvc **out, const struct copro_kv_geom *g, size_t bytes,
		     char *err, size_t errlen)
{
	return kvc_create(out, g, bytes, NULL, err, errlen);
}

int copro_kvc_create_external(struct copro_kvc **out, const struct copro_kv_geom *g,
			      const struct copro_kv_view *view,
			      int (*copy)(void *ctx, uint32_t dst, uint32_t src), void *copy_ctx,
			      char *err, size_t errlen)
{
	int ret;

	if (!view || !copy || view->n_blocks < 1) {
		seterr(err, errlen, "external KV storage without blocks or a copy function");
		return -EINVAL;
	}
	ret = kvc_create(out, g, (size_t)view->n_blocks * copro_kvc_block_bytes(g), view, err,
			 errlen);
	if (!ret) {
		(*out)->copy = copy;
		(*out)->copy_ctx = copy_ctx;
	}
	return ret;
}

/*
 * Makes a pool of bytes / block size blocks: over fresh anonymous memory, or
 * over ext, storage someone else owns (a GPU's), whose blocks we only count.
 */
static int kvc_create(struct copro_kvc **out, const struct copro_kv_geom *g, size_t bytes,
		      const struct copro_kv_view *ext, char *err, size_t errlen)
{
	struct copro_kvc *kvc;
	size_t block_bytes, bf, n, map;
	int ret;

	*out = NULL;
	if (!g->n_layers || !g->n_kv_heads || !g->head_dim || !g->block_tokens) {
		seterr(err, errlen, "KV geometry has a zero field (%u layers, %u kv heads, "
		       "head dim %u, %u tokens a block)", g->n_layers, g->n_kv_heads,
		       g->head_dim, g->block_tokens);
		return -EINVAL;
	}
	block_bytes = copro_kvc_block_bytes(g);
	if (!block_bytes) {
		seterr(err, errlen, "one KV block overflows size_t");
		return -EOVERFLOW;
	}
	n = bytes / block_bytes;
	if (n < 1) {
		seterr(err, errlen, "KV cache of %zu bytes holds no block: one block of %u tokens "
		       "takes %zu bytes (%u layers x %u kv heads x %u dims x K,V x f32)",
		       bytes, g->block_tokens, block_bytes, g->n_layers, g->n_kv_heads,
		       g->head_dim);
		return -ENOSPC;
	}
	if (n > NIL - 1)
		n = NIL - 1;
	for (map = 1; map < n && map < ((size_t)1 << 31); map <<= 1)
		;
	bf = copro_kv_block_floats(g);

	kvc = calloc(1, sizeof(*kvc));
	if (!kvc)
		goto nomem;
	kvc->geom = *g;
	kvc->n_blocks = (uint32_t)n;
	if (!ext) {
		kvc->mem_bytes = n * block_bytes;
		kvc->mem = mmap(NULL, kvc->mem_bytes, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (kvc->mem == MAP_FAILED) {
			kvc->mem = NULL;
			goto nomem_kvc;
		}
		/* advice only: a kernel without transparent huge pages still works */
		(void)madvise(kvc->mem, kvc->mem_bytes, MADV_HUGEPAGE);
	}
	kvc->blocks = malloc(n * sizeof(*kvc->blocks));
	kvc->tokens = malloc(n * g->block_tokens * sizeof(*kvc->tokens));
	kvc->buckets = malloc(map * sizeof(*kvc->buckets));
	kvc->hbuf = malloc(16 + (size_t)g->block_tokens * sizeof(int32_t));
	if (!kvc->blocks || !kvc->tokens || !kvc->buckets || !kvc->hbuf)
		goto nomem_arrays;
	if (ext)
		kvc->view = *ext;
	ret = ext ? 0 : copro_kv_view_init(&kvc->view, g, kvc->mem, (float *)kvc->mem + n * bf,
					   (uint32_t)n);
	if (ret)
		goto fail_arrays;
	kvc->map_mask = (uint32_t)(map - 1);
	memset(kvc->buckets, 0xff, map * sizeof(*kvc->buckets));
	kvc->free_head = kvc->lru_head = kvc->lru_tail = NIL;
	/* pushed from the top so block 0 is handed out first */
	for (size_t i = n; i-- > 0;) {
		kvc->blocks[i] = (struct copro_kvc_block){ .hnext = NIL, .prev = NIL };
		free_push(kvc, (uint32_t)i);
	}
	if (getrandom(&kvc->seed, sizeof(kvc->seed), GRND_NONBLOCK) != sizeof(kvc->seed))
		kvc->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)kvc;
	*out = kvc;
	return 0;

nomem_arrays:
	ret = -ENOMEM;
fail_arrays:
	free(kvc->hbuf);
	free(kvc->buckets);
	free(kvc->tokens);
	free(kvc->blocks);
	if (kvc->mem)
		munmap(kvc->mem, kvc->mem_bytes);
	free(kvc);
	seterr(err, errlen, "KV cache of %zu blocks: %s", n, strerror(-ret));
	return ret;
nomem_kvc:
	free(kvc);
nomem:
	seterr(err, errlen, "KV cache of %zu blocks (%zu bytes): out of memory", n,
	       n * block_bytes);
	return -ENOMEM;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14 */
#endif

/* MemAvailable of /proc/meminfo in bytes; SIZE_MAX when it cannot be read. */
static size_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long long kib;
	size_t bytes = SIZE_MAX;

	if (!f)
		return bytes;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
			bytes = kib > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)kib * 1024;
			break;
		}
	fclose(f);
	return bytes;
}

int copro_kvc_prefault(struct copro_kvc *kvc)
{
	long page = sysconf(_SC_PAGESIZE);

	if (!kvc->mem)
		return 0;
	/* more than the machine has free: leave it lazy rather than meet the OOM killer */
	if (kvc->mem_bytes > mem_available())
		return -ENOMEM;
	if (!madvise(kvc->mem, kvc->mem_bytes, MADV_POPULATE_WRITE))
		return 0;
	if (errno == ENOMEM || errno == EFAULT)
		return -ENOMEM;
	/* an older kernel: write a zero into each page (it reads as zero anyway) */
	for (size_t off = 0; off < kvc->mem_bytes; off += page > 0 ? (size_t)page : 4096)
		((volatile uint8_t *)kvc->mem)[off] = 0;
	return 0;
}

void copro_kvc_destroy(struct copro_kvc *kvc)
{
	if (!kvc)
		return;
	free(kvc->hbuf);
	free(kvc->buckets);
	free(kvc->tokens);
	free(kvc->blocks);
	if (kvc->mem)
		munmap(kvc->mem, kvc->mem_bytes);
	free(kvc);
}

/* ---- sequences ------------------------------------------------------------ */

int copro_kvc_seq_init(struct copro_kvc *kvc, struct copro_kvc_seq *seq)
{
	memset(seq, 0, sizeof(*seq));
	seq->tail = calloc(kvc->geom.block_tokens, sizeof(*seq->tail));
	return seq->tail ? 0 : -ENOMEM;
}

void copro_kvc_seq_free(struct copro_kvc *kvc, struct copro_kvc_seq *seq)
{
	for (uint32_t i = seq->n_blocks; i-- > 0;)
		block_put(kvc, seq->table[i]);
	free(seq->table);
	free(seq->tail);
	memset(seq, 0, sizeof(*seq));
}

static int seq_is_empty(const struct copro_kvc_seq *seq)
{
	return !seq->n_blocks && !seq->n_tokens && !seq->n_committed && seq->tail;
}

/* Returns 0 once the table holds n entries, or -ENOMEM (table unchanged). */
static int seq_reserve(struct copro_kvc_seq *seq, uint32_t n)
{
	uint32_t cap = seq->cap ? seq->cap : 8;
	uint32_t *t;

	if (n <= seq->cap)
		return 0;
	while (cap < n)
		cap = cap > UINT32_MAX / 2 ? n : cap * 2;
	t = realloc(seq->table, (size_t)cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	seq->table = t;
	seq->cap = cap;
	return 0;
}

int copro_kvc_seq_match_prefix(struct copro_kvc *kvc, struct copro_kvc_seq *seq,
			       const int32_t *tokens, uint32_t n)
{
	const uint32_t bt = kvc->geom.block_tokens;
	uint32_t max = n ? (n - 1) / bt : 0, i;
	struct copro_kvc_key parent = { 0, 0 };

	if (!seq_is_empty(seq))
		return -EINVAL;
	if (seq_reserve(seq, max))
		return -ENOMEM;
	kvc->q_tokens += n;
	kvc->q_blocks += max;
	for (i = 0; i < max; i++) {
		struct copro_kvc_key key = block_key(kvc, parent, tokens + (size_t)i * bt);
		uint32_t b = map_find(kvc, key, parent, tokens + (size_t)i * bt);

		if (b == NIL)
			break;
		block_get(kvc, b);
		seq->table[i] = b;
		parent = key;
	}
	seq->n_blocks = i;
	seq->n_tokens = seq->n_committed = i * bt;
	seq->parent = parent;
	kvc->hit_blocks += i;
	kvc->hit_tokens += (uint64_t)i * bt;
	return (int)(i * bt);
}

/* Whether appending must first copy the last block: partly filled and not ours alone. */
static int seq_needs_cow(const struct copro_kvc *kvc, const struct copro_kvc_seq *seq)
{
	const struct copro_kvc_block *last;

	if (!seq->n_blocks || seq->n_tokens % kvc->geom.block_tokens == 0)
		return 0;
	last = &kvc->blocks[seq->table[seq->n_blocks - 1]];
	return last->ref > 1 || last->hashed;
}

uint32_t copro_kvc_blocks_needed(const struct copro_kvc *kvc, const struct copro_kvc_seq *seq,
				 uint32_t n)
{
	const uint64_t bt = kvc->geom.block_tokens;
	uint64_t blocks;

	if (!n)
		return 0;
	blocks = ((uint64_t)seq->n_tokens + n + bt - 1) / bt - seq->n_blocks +
		 (uint64_t)seq_needs_cow(kvc, seq);
	return blocks > UINT32_MAX ? UINT32_MAX : (uint32_t)blocks;
}

int copro_kvc_seq_append(struct copro_kvc *kvc, struct copro_kvc_seq *seq, uint32_t n)
{
	const uint32_t bt = kvc->geom.block_tokens;
	uint32_t total, need, first, end;

	if (!n)
		return 0;
	if (n > UINT32_MAX - seq->n_tokens)
		return -EOVERFLOW;
	end = seq->n_tokens + n;
	total = (uint32_t)(((uint64_t)end + bt - 1) / bt);
	need = copro_kvc_blocks_needed(kvc, seq, n);
	if (need > copro_kvc_free_blocks(kvc))
		return -ENOSPC;
	if (seq_reserve(seq, total))
		return -ENOMEM;

	/* nothing fails from here on */
	if (seq_needs_cow(kvc, seq)) {
		const struct copro_kv_view *kv = &kvc->view;
		uint32_t old = seq->table[seq->n_blocks - 1];
		uint32_t b = block_alloc(kvc);
		size_t bytes = kv->block_stride * sizeof(float);

		if (kvc->copy) {
			/* Device storage: its owner copies (a failure shows in its next step). */
			kvc->copy(kvc->copy_ctx, b, old);
		} else {
			memcpy(kv->k + b * kv->block_stride, kv->k + old * kv->block_stride, bytes);
			memcpy(kv->v + b * kv->block_stride, kv->v + old * kv->block_stride, bytes);
		}
		kvc->blocks[b].fill = kvc->blocks[old].fill;
		seq->table[seq->n_blocks - 1] = b;
		block_put(kvc, old);
		kvc->cow_copies++;
	}
	first = seq->n_blocks ? seq->n_blocks - 1 : 0;
	while (seq->n_blocks < total)
		seq->table[seq->n_blocks++] = block_alloc(kvc);
	for (uint32_t i = first; i < total; i++) {
		struct copro_kvc_block *blk = &kvc->blocks[seq->table[i]];
		uint32_t f = end - i * bt < bt ? end - i * bt : bt;

		blk->fill = f > blk->fill ? f : blk->fill;
	}
	seq->n_tokens = end;
	return 0;
}

/*
 * Puts full block b (ids tokens, after the block keyed parent) in the
 * prefix map under key, unless it is there already (a forked sequence
 * committed it first) or another block holds the same prefix.
 */
static void block_register(struct copro_kvc *kvc, uint32_t b, struct copro_kvc_key key,
			   struct copro_kvc_key parent, const int32_t *tokens)
{
	size_t nt = kvc->geom.block_tokens;

	if (kvc->blocks[b].hashed || map_find(kvc, key, parent, tokens) != NIL)
		return;
	kvc->blocks[b].key = key;
	kvc->blocks[b].parent = parent;
	memcpy(kvc->tokens + b * nt, tokens, nt * sizeof(int32_t));
	map_insert(kvc, b);
}

int copro_kvc_seq_commit(struct copro_kvc *kvc, struct copro_kvc_seq *seq,
			 const int32_t *tokens, uint32_t n)
{
	const uint32_t bt = kvc->geom.block_tokens;

	if (n > seq->n_tokens - seq->n_committed)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t slot = seq->n_committed % bt;

		seq->tail[slot] = tokens[i];
		seq->n_committed++;
		if (slot == bt - 1) {
			struct copro_kvc_key key = block_key(kvc, seq->parent, seq->tail);

			block_register(kvc, seq->table[seq->n_committed / bt - 1], key,
				       seq->parent, seq->tail);
			seq->parent = key;
		}
	}
	return 0;
}

int copro_kvc_seq_fork(struct copro_kvc *kvc, struct copro_kvc_seq *dst,
		       const struct copro_kvc_seq *src)
{
	if (!seq_is_empty(dst) || dst == src)
		return -EINVAL;
	if (seq_reserve(dst, src->n_blocks))
		return -ENOMEM;
	for (uint32_t i = 0; i < src->n_blocks; i++) {
		dst->table[i] = src->table[i];
		block_get(kvc, src->table[i]);
	}
	memcpy(dst->tail, src->tail, kvc->geom.block_tokens * sizeof(*dst->tail));
	dst->n_blocks = src->n_blocks;
	dst->n_tokens = src->n_tokens;
	dst->n_committed = src->n_committed;
	dst->parent = src->parent;
	return 0;
}

/* ---- accounting ----------------------------------------------------------- */

bool copro_kvc_can_admit(const struct copro_kvc *kvc, uint32_t n_tokens, uint32_t watermark)
{
	uint64_t need = ((uint64_t)n_tokens + kvc->geom.block_tokens - 1) / kvc->geom.block_tokens;

	return (uint64_t)copro_kvc_free_blocks(kvc) >= need + watermark;
}

void copro_kvc_stats(const struct copro_kvc *kvc, struct copro_kvc_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->total = kvc->n_blocks;
	st->block_tokens = kvc->geom.block_tokens;
	for (uint32_t b = 0; b < kvc->n_blocks; b++) {
		const struct copro_kvc_block *blk = &kvc->blocks[b];

		if (blk->ref) {
			st->used++;
			st->live_slots += blk->fill;
		} else if (blk->hashed) {
			st->cached++;
		} else {
			st->free++;
		}
	}
	if (st->used)
		st->utilization = (double)st->live_slots / ((double)st->used * st->block_tokens);
	st->q_tokens = kvc->q_tokens;
	st->hit_tokens = kvc->hit_tokens;
	st->q_blocks = kvc->q_blocks;
	st->hit_blocks = kvc->hit_blocks;
	st->evictions = kvc->evictions;
	st->cow_copies = kvc->cow_copies;
}

int copro_kvc_check(const struct copro_kvc *kvc)
{
	uint8_t *seen = calloc(kvc->n_blocks ? kvc->n_blocks : 1, 1);
	uint32_t n, prev, n_hashed = 0, in_map = 0;
	int ret = -EUCLEAN;

	if (!seen)
		return -ENOMEM;
	/* free list: ref 0, unhashed, each once */
	n = 0;
	for (uint32_t b = kvc->free_head; b != NIL; b = kvc->blocks[b].next) {
		if (b >= kvc->n_blocks || seen[b] || kvc->blocks[b].ref || kvc->blocks[b].hashed)
			goto out;
		seen[b] = 1;
		n++;
	}
	if (n != kvc->n_free)
		goto out;
	/* LRU list: ref 0, hashed, each once, links consistent both ways */
	n = 0;
	prev = NIL;
	for (uint32_t b = kvc->lru_head; b != NIL; b = kvc->blocks[b].next) {
		if (b >= kvc->n_blocks || seen[b] || kvc->blocks[b].ref ||
		    !kvc->blocks[b].hashed || kvc->blocks[b].prev != prev)
			goto out;
		seen[b] = 2;
		prev = b;
		n++;
	}
	if (n != kvc->n_cached || kvc->lru_tail != prev)
		goto out;
	/* every block not on a list is in use */
	for (uint32_t b = 0; b < kvc->n_blocks; b++) {
		if (!seen[b] && !kvc->blocks[b].ref)
			goto out;
		n_hashed += kvc->blocks[b].hashed;
	}
	/* the map holds exactly the hashed blocks, each in its key's bucket */
	for (uint32_t i = 0; i <= kvc->map_mask; i++)
		for (uint32_t b = kvc->buckets[i]; b != NIL; b = kvc->blocks[b].hnext) {
			if (b >= kvc->n_blocks || !kvc->blocks[b].hashed ||
			    (kvc->blocks[b].key.lo & kvc->map_mask) != i || ++in_map > n_hashed)
				goto out;
		}
	if (in_map != n_hashed)
		goto out;
	ret = 0;
out:
	free(seen);
	return ret;
}
