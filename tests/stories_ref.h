/* SPDX-License-Identifier: MIT */
/*
 * stories_ref.h - the reference outputs llama.cpp produced on the shared
 * stories260K model (models/stories260K.reference.txt and .logits.tsv, see
 * the README there): prompts, their ids, greedy continuations and texts,
 * and the last prompt position's logits with an f32 KV cache. Header-only,
 * for the tests that compare against them (CPU and GPU).
 */
#ifndef COPRO_TEST_STORIES_REF_H
#define COPRO_TEST_STORIES_REF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ref {
	char prompt[128];
	int32_t prompt_ids[64];
	uint32_t n_prompt;
	int32_t gen_ids[64];
	uint32_t n_gen;
	char gen_text[1024];
	float logits[512];		/* llama.cpp, f32 KV cache */
};

static inline uint32_t parse_ids(const char *s, int32_t *ids, uint32_t cap)
{
	uint32_t n = 0;
	char *end;

	s = strchr(s, ':') + 1;
	for (;;) {
		long v = strtol(s, &end, 10);

		if (end == s || n == cap)
			return n;
		ids[n++] = (int32_t)v;
		s = end;
	}
}

/* Reads the prompts, ids, texts and logits llama.cpp produced. Returns how many. */
static inline int read_refs(const char *models, struct ref *r, int cap)
{
	char path[300], line[4096];
	int n = -1, no[8] = { 0 };
	FILE *f;

	snprintf(path, sizeof(path), "%s/stories260K.reference.txt", models);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "== prompt ", 10) && n + 1 < cap) {
			char *q1 = strchr(line, '"'), *q2 = q1 ? strchr(q1 + 1, '"') : NULL;

			n++;
			memset(&r[n], 0, sizeof(r[n]));
			no[n] = atoi(line + 10);
			if (q1 && q2)
				snprintf(r[n].prompt, sizeof(r[n].prompt), "%.*s", (int)(q2 - q1 - 1),
					 q1 + 1);
		} else if (n >= 0 && !strncmp(line, "prompt_ids", 10)) {
			r[n].n_prompt = parse_ids(line, r[n].prompt_ids, 64);
		} else if (n >= 0 && !strncmp(line, "gen_ids", 7)) {
			r[n].n_gen = parse_ids(line, r[n].gen_ids, 64);
		} else if (n >= 0 && !strncmp(line, "gen_text", 8)) {
			const char *p = strchr(line, '"') + 1;
			char *o = r[n].gen_text;

			/* Unescape \n, \" and \\ up to the closing quote. */
			for (; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1]) {
					p++;
					*o++ = *p == 'n' ? '\n' : *p;
				} else {
					*o++ = *p;
				}
			}
			*o = '\0';
		}
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/stories260K.logits.tsv", models);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		int p, id;
		double f16, f32;

		if (line[0] == '#' || sscanf(line, "%d %d %lf %lf", &p, &id, &f16, &f32) != 4)
			continue;
		for (int i = 0; i <= n; i++)
			if (no[i] == p && id >= 0 && id < 512)
				r[i].logits[id] = (float)f32;
	}
	fclose(f);
	return n + 1;
}

#endif
