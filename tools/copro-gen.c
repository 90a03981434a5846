// SPDX-License-Identifier: MIT
/*
 * copro-gen - stream a language model's completion of a prompt to the
 * terminal through coprod.
 *
 * Reading order: options are parsed and range-checked (usage errors exit 2
 * before any connection), the prompt is read from the arguments or standard
 * input, the client connects with an arena sized for the prompt and
 * max_tokens, and each token's text is written as its event arrives. Ctrl-C
 * cancels the generation and still reads its last event, so the daemon has
 * freed the sequence's KV blocks before the tool exits 130. Errors from the
 * daemon exit 1.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "copro.h"

#define COPRO_VERSION	"0.1.0"

#define MAX_TOKENS_MAX	(1U << 24)	/* copro_gen_start()'s bound */
#define POLL_NS		100000000LL	/* how often a wait looks at the Ctrl-C flag */
#define CANCEL_WAIT_NS	10000000000LL	/* how long the daemon gets to confirm a cancel */

static const char *model;
static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: copro-gen [-s PATH] -m MODEL [-n N] [--temperature T] [--top-k K]\n"
		"                 [--top-p P] [--min-p P] [--repeat-penalty R]\n"
		"                 [--repeat-last-n N] [--seed S] [--stop STR]...\n"
		"                 [--ignore-eos] [--truncate] [--no-bos] [--ids] [--stats]\n"
		"                 [--prompt-ids \"ID ID ...\" | PROMPT... | -] [-h] [-V]\n"
		"\n"
		"Stream a language model's completion of PROMPT through coprod. With no\n"
		"PROMPT (or '-'), the prompt is standard input (one trailing newline dropped).\n"
		"\n"
		"  -s, --socket PATH       the daemon's socket (default: as coprod's)\n"
		"  -m, --model NAME        the language model\n"
		"  -n, --max-tokens N      tokens to generate at most, 1..%u (default 128)\n"
		"      --temperature T     0 = greedy, up to 100 (default 0.8)\n"
		"      --top-k K           keep the K likeliest tokens, 0 = off (default 40)\n"
		"      --top-p P           nucleus sampling, (0, 1], 1 = off (default 0.95)\n"
		"      --min-p P           drop tokens below P x the likeliest, [0, 1), 0 = off\n"
		"                          (default 0.05)\n"
		"      --repeat-penalty R  penalize recent tokens, > 0, 1 = off (default 1)\n"
		"      --repeat-last-n N   how many recent tokens, 0 = off (default 64)\n"
		"      --seed S            the sampler's seed, 0..2^64-1 (default 0)\n"
		"      --stop STR          end before STR (1..%d bytes; up to %d times)\n"
		"      --ignore-eos        generate through the end-of-sequence token\n"
		"      --truncate          keep the prompt's tail when it fills the context\n"
		"      --no-bos            do not put the BOS token before a text prompt\n"
		"      --prompt-ids IDS    the prompt as token ids (spaces or commas between),\n"
		"                          used as given: no BOS is added\n"
		"      --ids               after the text, print on stderr the prompt's token ids\n"
		"                          as the model read them (tokenized, BOS, truncated),\n"
		"                          their count, and the generated ids\n"
		"      --stats             after the text, print on stderr token counts, times\n"
		"                          and the finish reason\n"
		"  -h, --help              show this help\n"
		"  -V, --version           show the version\n"
		"\n"
		"Exit status: 0 when the generation ended (stop or length), 1 on an error,\n"
		"2 on a usage error, 130 when interrupted by Ctrl-C.\n",
		MAX_TOKENS_MAX, COPRO_GEN_STOP_LEN - 1, COPRO_GEN_STOP_STRS);
}

static void on_sigint(int sig)
{
	interrupted = 1;
}

/* ---- arguments ----------------------------------------------------------- */

/*
 * Parses an unsigned decimal integer in [lo, hi]. Returns 0, or -1 after
 * a message naming the option and the range.
 */
static int parse_uint(const char *opt, const char *s, unsigned long long lo,
		      unsigned long long hi, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *end || *s == '-' || *s == '+' || *s == ' ') {
		fprintf(stderr, "copro-gen: %s: '%s' is not a number\n", opt, s);
		return -1;
	}
	if (errno == ERANGE || v < lo || v > hi) {
		fprintf(stderr, "copro-gen: %s: %s is out of range (%llu..%llu)\n", opt, s, lo,
			hi);
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * Parses a finite real number. The range is checked by the caller, which
 * knows how to say it. Returns 0 or -1 after a message.
 */
static int parse_real(const char *opt, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || *s == ' ') {
		fprintf(stderr, "copro-gen: %s: '%s' is not a number\n", opt, s);
		return -1;
	}
	if (!isfinite(v) || errno == ERANGE) {
		fprintf(stderr, "copro-gen: %s: '%s' is not a finite number\n", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * Parses "ID ID ..." (spaces, tabs, newlines or commas between) into a
 * malloc'd array of token ids in [0, INT32_MAX]. Returns the count, or -1
 * after a message.
 */
static long parse_ids(const char *s, int32_t **out)
{
	size_t n = 0, cap = 16;
	int32_t *ids = malloc(cap * sizeof(*ids));

	if (!ids) {
		fprintf(stderr, "copro-gen: out of memory\n");
		return -1;
	}
	for (;;) {
		unsigned long long v;
		const char *p;
		char *end;

		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',')
			s++;
		if (!*s)
			break;
		p = s;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (end == p || *p == '-' || *p == '+' ||
		    (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != ',')) {
			fprintf(stderr, "copro-gen: --prompt-ids: '%.*s' is not a token id\n",
				(int)strcspn(p, " \t\n,"), p);
			goto fail;
		}
		if (errno == ERANGE || v > INT32_MAX) {
			fprintf(stderr, "copro-gen: --prompt-ids: %.*s is out of range (0..%d)\n",
				(int)(end - p), p, INT32_MAX);
			goto fail;
		}
		if (n == cap) {
			int32_t *bigger = realloc(ids, 2 * cap * sizeof(*ids));

			if (!bigger) {
				fprintf(stderr, "copro-gen: out of memory\n");
				goto fail;
			}
			ids = bigger;
			cap *= 2;
		}
		ids[n++] = (int32_t)v;
		s = end;
	}
	if (!n) {
		fprintf(stderr, "copro-gen: --prompt-ids: no token ids\n");
		goto fail;
	}
	*out = ids;
	return (long)n;
fail:
	free(ids);
	return -1;
}

/* Reads all of standard input into a malloc'd buffer; 0 or -1 after a message. */
static int read_stdin(char **out, size_t *len)
{
	size_t n = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		goto nomem;
	for (;;) {
		size_t got;

		if (n == cap) {
			char *bigger = realloc(buf, 2 * cap);

			if (!bigger)
				goto nomem;
			buf = bigger;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n, stdin);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "copro-gen: cannot read standard input: %s\n", strerror(errno));
		free(buf);
		return -1;
	}
	/* `echo PROMPT | copro-gen` should mean PROMPT, not PROMPT and a newline. */
	if (n && buf[n - 1] == '\n')
		n--;
	if (n && buf[n - 1] == '\r')
		n--;
	*out = buf;
	*len = n;
	return 0;
nomem:
	free(buf);
	fprintf(stderr, "copro-gen: out of memory\n");
	return -1;
}

/* Joins the prompt's words with single spaces, as the shell split them. */
static char *join_args(char **argv, int argc, size_t *len)
{
	size_t n = 0;
	char *s;

	for (int i = 0; i < argc; i++)
		n += strlen(argv[i]) + 1;
	s = malloc(n + 1);
	if (!s)
		return NULL;
	n = 0;
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]);

		if (i)
			s[n++] = ' ';
		memcpy(s + n, argv[i], l);
		n += l;
	}
	s[n] = '\0';
	*len = n;
	return s;
}

/* ---- output -------------------------------------------------------------- */

static const char *finish_name(uint32_t finish)
{
	switch (finish) {
	case COPRO_FINISH_STOP:
		return "stop";
	case COPRO_FINISH_LENGTH:
		return "length";
	case COPRO_FINISH_CANCELLED:
		return "cancelled";
	case COPRO_FINISH_ERROR:
		return "error";
	default:
		return "unknown";
	}
}

/* copro_strerror(), with the generation's own meanings of a few errno codes. */
static const char *gen_strerror(int err)
{
	switch (err) {
	case -E2BIG:
		return "the prompt fills the model's context (--truncate keeps its tail)";
	case -EINVAL:
		return "invalid argument (a parameter out of range, or a token id outside "
		       "the vocabulary)";
	case COPRO_E_SIGNATURE:
		return "tensors do not match the model's signature (is it a language model?)";
	default:
		return copro_strerror(err);
	}
}

/* The prompt's ids as the model read them (tokenized, BOS, truncated), then the generated ones. */
static void print_ids(const int32_t *prompt, size_t n_prompt, const int32_t *gen, size_t n_gen,
		      const struct copro_gen_result *r)
{
	fprintf(stderr, "prompt ids:");
	for (size_t i = 0; prompt && i < n_prompt; i++)
		fprintf(stderr, " %d", prompt[i]);
	fputc('\n', stderr);
	fprintf(stderr, "prompt tokens: %u\n", r ? r->prompt_tokens : 0);
	fprintf(stderr, "generated ids:");
	for (size_t i = 0; i < n_gen; i++)
		fprintf(stderr, " %d", gen[i]);
	fputc('\n', stderr);
}

static void print_stats(const struct copro_gen_result *r)
{
	double total_s = r->total_ns / 1e9;

	fprintf(stderr,
		"prompt tokens:     %u\n"
		"cached tokens:     %u\n"
		"generated tokens:  %u\n"
		"time to first:     %.3f ms\n"
		"time per token:    %.3f ms\n"
		"total:             %.3f ms\n"
		"tokens/s:          %.1f\n"
		"finish:            %s\n"
		"preemptions:       %u\n",
		r->prompt_tokens, r->cached_tokens, r->gen_tokens, r->ttft_ns / 1e6,
		r->tpot_ns / 1e6, r->total_ns / 1e6,
		total_s > 0 ? r->gen_tokens / total_s : 0.0, finish_name(r->finish),
		r->preemptions);
}

/* ---- main ---------------------------------------------------------------- */

enum {
	OPT_TEMPERATURE = 256,
	OPT_TOP_K,
	OPT_TOP_P,
	OPT_MIN_P,
	OPT_REPEAT_PENALTY,
	OPT_REPEAT_LAST_N,
	OPT_SEED,
	OPT_STOP,
	OPT_IGNORE_EOS,
	OPT_TRUNCATE,
	OPT_NO_BOS,
	OPT_IDS,
	OPT_STATS,
	OPT_PROMPT_IDS,
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "model", required_argument, NULL, 'm' },
		{ "max-tokens", required_argument, NULL, 'n' },
		{ "temperature", required_argument, NULL, OPT_TEMPERATURE },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "top-p", required_argument, NULL, OPT_TOP_P },
		{ "min-p", required_argument, NULL, OPT_MIN_P },
		{ "repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY },
		{ "repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "stop", required_argument, NULL, OPT_STOP },
		{ "ignore-eos", no_argument, NULL, OPT_IGNORE_EOS },
		{ "truncate", no_argument, NULL, OPT_TRUNCATE },
		{ "no-bos", no_argument, NULL, OPT_NO_BOS },
		{ "ids", no_argument, NULL, OPT_IDS },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "prompt-ids", required_argument, NULL, OPT_PROMPT_IDS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	struct copro_opts o = { .sq_entries = 8, .idle = COPRO_IDLE_BLOCK };
	struct copro_gen_params p;
	struct copro_gen_event ev;
	struct copro_model_info mi;
	struct sigaction sa = { 0 };
	struct copro_client *c = NULL;
	struct copro_gen *g = NULL;
	const char *sock = NULL, *prompt_ids_arg = NULL;
	char *text = NULL, path[108];
	int32_t *ids = NULL, *gen_ids = NULL;
	size_t len = 0, n_gen = 0, text_out = 0;
	uint64_t need, cancel_deadline = 0;
	int show_ids = 0, show_stats = 0, n_stop = 0, ends_nl = 1, cancelled = 0;
	int ch, ret, status = 1;
	struct timespec ts;

	copro_gen_params_init(&p);
	while ((ch = getopt_long(argc, argv, "s:m:n:hV", opts, NULL)) != -1) {
		unsigned long long u;
		double d;

		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'm':
			model = optarg;
			break;
		case 'n':
			if (parse_uint("--max-tokens", optarg, 1, MAX_TOKENS_MAX, &u))
				return 2;
			p.max_tokens = (uint32_t)u;
			break;
		case OPT_TEMPERATURE:
			if (parse_real("--temperature", optarg, &d))
				return 2;
			if (d < 0 || d > 100) {
				fprintf(stderr, "copro-gen: --temperature: %s is out of range "
					"([0, 100]; 0 = greedy)\n", optarg);
				return 2;
			}
			p.temperature = (float)d;
			break;
		case OPT_TOP_K:
			if (parse_uint("--top-k", optarg, 0, UINT32_MAX, &u))
				return 2;
			p.top_k = (uint32_t)u;
			break;
		case OPT_TOP_P:
			if (parse_real("--top-p", optarg, &d))
				return 2;
			if (!(d > 0 && d <= 1) || (float)d <= 0.0f) {
				fprintf(stderr, "copro-gen: --top-p: %s is out of range ((0, 1]; "
					"1 = off)\n", optarg);
				return 2;
			}
			p.top_p = (float)d;
			break;
		case OPT_MIN_P:
			if (parse_real("--min-p", optarg, &d))
				return 2;
			if (!(d >= 0 && d < 1) || (float)d >= 1.0f) {
				fprintf(stderr, "copro-gen: --min-p: %s is out of range ([0, 1); "
					"0 = off)\n", optarg);
				return 2;
			}
			p.min_p = (float)d;
			break;
		case OPT_REPEAT_PENALTY:
			if (parse_real("--repeat-penalty", optarg, &d))
				return 2;
			if (!(d > 0) || (float)d <= 0.0f || !isfinite((float)d)) {
				fprintf(stderr, "copro-gen: --repeat-penalty: %s is out of range "
					"(> 0; 1 = off)\n", optarg);
				return 2;
			}
			p.repeat_penalty = (float)d;
			break;
		case OPT_REPEAT_LAST_N:
			if (parse_uint("--repeat-last-n", optarg, 0, UINT32_MAX, &u))
				return 2;
			p.repeat_last_n = (uint32_t)u;
			break;
		case OPT_SEED:
			if (parse_uint("--seed", optarg, 0, UINT64_MAX, &u))
				return 2;
			p.seed = u;
			break;
		case OPT_STOP: {
			size_t l = strlen(optarg);

			if (n_stop == COPRO_GEN_STOP_STRS) {
				fprintf(stderr, "copro-gen: more than %d --stop strings\n",
					COPRO_GEN_STOP_STRS);
				return 2;
			}
			if (!l || l >= COPRO_GEN_STOP_LEN) {
				fprintf(stderr, "copro-gen: --stop: a stop string holds 1..%d bytes, "
					"not %zu\n", COPRO_GEN_STOP_LEN - 1, l);
				return 2;
			}
			memcpy(p.stop[n_stop++], optarg, l + 1);
			break;
		}
		case OPT_IGNORE_EOS:
			p.flags |= COPRO_GEN_F_IGNORE_EOS;
			break;
		case OPT_TRUNCATE:
			p.flags |= COPRO_GEN_F_TRUNCATE;
			break;
		case OPT_NO_BOS:
			p.flags |= COPRO_GEN_F_NO_BOS;
			break;
		case OPT_IDS:
			show_ids = 1;
			break;
		case OPT_STATS:
			show_stats = 1;
			break;
		case OPT_PROMPT_IDS:
			prompt_ids_arg = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("copro-gen %s (ABI %d.%d)\n", COPRO_VERSION, COPRO_ABI_MAJOR,
			       COPRO_ABI_MINOR);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!model || !*model) {
		fprintf(stderr, "copro-gen: no model (-m MODEL; try --help)\n");
		return 2;
	}

	/* The prompt: token ids, the arguments, or standard input. */
	if (prompt_ids_arg) {
		long n;

		if (optind < argc) {
			fprintf(stderr, "copro-gen: --prompt-ids and a text prompt ('%s') both "
				"given\n", argv[optind]);
			return 2;
		}
		n = parse_ids(prompt_ids_arg, &ids);
		if (n < 0)
			return 2;
		len = (size_t)n;
		p.flags |= COPRO_GEN_F_IDS;
	} else if (optind == argc || (optind + 1 == argc && !strcmp(argv[optind], "-"))) {
		if (read_stdin(&text, &len))
			return 1;
	} else {
		text = join_args(argv + optind, argc - optind, &len);
		if (!text) {
			fprintf(stderr, "copro-gen: out of memory\n");
			return 1;
		}
	}
	if (show_ids) {
		gen_ids = malloc((size_t)p.max_tokens * sizeof(*gen_ids));
		if (!gen_ids) {
			fprintf(stderr, "copro-gen: out of memory\n");
			goto out;
		}
	}

	/*
	 * The arena holds the library's five tensors (see copro_gen_start): the
	 * prompt, the parameters, (max_tokens, 2) I32 pairs, 32 bytes of text a
	 * token plus 1 KiB, and the result; each rounded up to 64 bytes.
	 */
	need = ((len * (ids ? 4 : 1) + 63) & ~63ULL) + sizeof(struct copro_gen_params) +
	       (uint64_t)p.max_tokens * 8 + 63 + (uint64_t)p.max_tokens * 32 + 1024 + 63 +
	       sizeof(struct copro_gen_result) + (64 << 10);
	o.arena_bytes = need < (1 << 20) ? 1 << 20 : (need + 4095) & ~4095ULL;
	if (!sock) {
		ret = copro_default_socket(path, sizeof(path));
		if (ret < 0) {
			fprintf(stderr, "copro-gen: default socket path: %s\n", copro_strerror(ret));
			goto out;
		}
		sock = path;
	}
	ret = copro_connect(sock, &o, &c);
	if (ret) {
		fprintf(stderr, "copro-gen: cannot connect to %s: %s\n", sock, copro_strerror(ret));
		goto out;
	}
	ret = copro_lookup(c, model, &mi);
	if (ret) {
		fprintf(stderr, "copro-gen: %s: %s\n", model, copro_strerror(ret));
		goto out;
	}

	/*
	 * From here Ctrl-C cancels instead of killing: the daemon then ends the
	 * sequence and frees its blocks before the last event comes. A second
	 * Ctrl-C (SA_RESETHAND) kills as usual.
	 */
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);

	ret = copro_gen_start(c, mi.handle, ids ? (const void *)ids : text, len, &p, 0, &g);
	if (ret) {
		fprintf(stderr, "copro-gen: %s: %s\n", model, gen_strerror(ret));
		goto out;
	}
	for (;;) {
		if (interrupted && !cancelled) {
			ret = copro_gen_cancel(g);
			if (ret) {
				fprintf(stderr, "copro-gen: %s: cancel: %s\n", model,
					copro_strerror(ret));
				goto out;
			}
			cancelled = 1;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			cancel_deadline = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec +
					  CANCEL_WAIT_NS;
		}
		ret = copro_gen_next(g, &ev, POLL_NS);
		if (ret == -ETIMEDOUT) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			if (cancelled &&
			    (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec > cancel_deadline) {
				fprintf(stderr, "copro-gen: %s: the daemon did not end the "
					"generation after the cancel\n", model);
				status = 130;
				goto out;
			}
			continue;
		}
		if (ret < 0) {
			fprintf(stderr, "copro-gen: %s: %s\n", model, copro_strerror(ret));
			goto out;
		}
		if (ev.len) {
			fwrite(ev.text, 1, ev.len, stdout);
			fflush(stdout);
			ends_nl = ev.text[ev.len - 1] == '\n';
			text_out += ev.len;
		}
		if (ret == 0)
			break;
		if (gen_ids && n_gen < p.max_tokens)
			gen_ids[n_gen++] = ev.token;
	}

	/* The last event: ev.status and ev.result say how it ended. */
	if (text_out && !ends_nl && isatty(STDOUT_FILENO))
		putchar('\n');
	if (fflush(stdout)) {
		fprintf(stderr, "copro-gen: cannot write standard output: %s\n", strerror(errno));
		goto out;
	}
	if (show_ids) {
		const int32_t *pids = NULL;
		int np = copro_gen_prompt_ids(g, &pids);

		print_ids(np > 0 ? pids : NULL, np > 0 ? (size_t)np : 0, gen_ids, n_gen, ev.result);
	}
	if (show_stats)
		print_stats(ev.result);
	if (interrupted) {
		status = 130;
	} else if (ev.status || ev.result->finish == COPRO_FINISH_ERROR ||
		   ev.result->finish == COPRO_FINISH_CANCELLED) {
		int err = ev.status ? ev.status : ev.result->error;

		fprintf(stderr, "copro-gen: %s: %s (finish %s)\n", model,
			err ? gen_strerror(err) : "the generation did not end normally",
			finish_name(ev.result->finish));
	} else {
		status = 0;
	}
out:
	/* copro_gen_free() cancels and drains a generation that has not ended. */
	copro_gen_free(g);
	if (c)
		copro_close(c);
	free(gen_ids);
	free(ids);
	free(text);
	return status;
}
