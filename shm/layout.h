/* SPDX-License-Identifier: MIT */
/*
 * layout.h - computing and checking the layout of a client region.
 *
 * The server computes a layout and writes it into the superblock; the client
 * reads the superblock back and checks every offset against the size of the
 * file it was handed before it touches anything else (Aeron's attach).
 */
#ifndef COPRO_LAYOUT_H
#define COPRO_LAYOUT_H

#include <stdint.h>

#include "copro_abi.h"
#include "ring.h"

#define COPRO_SQ_MIN		2
#define COPRO_SQ_MAX		4096
#define COPRO_CQ_MAX		16384
#define COPRO_ARENA_MIN		(64ULL << 10)
#define COPRO_ARENA_MAX		(4ULL << 30)

struct copro_layout {
	uint32_t sq_entries;
	uint32_t cq_entries;
	uint64_t arena_size;
	struct copro_ring_off sq;
	struct copro_ring_off cq;
	uint64_t arena_off;
	uint64_t region_size;
};

/*
 * Rounds the requested sizes to what the ABI allows (powers of two, within
 * bounds; cq at least sq) and fills in every offset. Returns 0, or -EINVAL
 * when a request is zero or cannot be satisfied.
 */
int copro_layout_compute(uint32_t sq_entries, uint32_t cq_entries, uint64_t arena_size,
			 struct copro_layout *l);

/* Writes the read-only lines of the superblock from a layout (magic excluded). */
void copro_layout_to_sb(const struct copro_layout *l, struct copro_sb *sb);

/*
 * Checks a superblock read from a region of file_size bytes: magic, ABI
 * major, sizes, every ring and arena inside the file, rings not overlapping.
 * Fills *l from it on success. Returns 0, -EPROTO for a bad magic or
 * superblock, -EPROTONOSUPPORT for another ABI major, -ERANGE for an offset
 * outside the file.
 */
int copro_layout_from_sb(const struct copro_sb *sb, uint64_t file_size, struct copro_layout *l);

/* Sets up a private ring view on a mapped region from its ring offsets. */
void copro_ring_init(struct copro_ring *r, void *base, const struct copro_ring_off *o);

#endif /* COPRO_LAYOUT_H */
