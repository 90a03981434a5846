/* SPDX-License-Identifier: MIT */
/*
 * transport.c - what a copro round trip costs, beside what it replaces.
 *
 * One run measures, on the same payload sizes and the same two CPUs:
 *
 *   shm ring      two SPSC rings of 64-byte slots (shm/ring.h) in a MAP_SHARED
 *                 mapping, both sides busy-polling; the pinger copies the
 *                 payload into a slot, the ponger copies it into its reply
 *                 slot, as echo does: the floor of any shared-memory transport
 *   eventfd       both sides blocked in read() on an eventfd, payload in
 *                 shared memory: the floor for a transport that sleeps
 *   unix seqpacket  blocking send()/recv() of the payload on a socketpair
 *   tcp loopback  blocking write()/read() on 127.0.0.1 with TCP_NODELAY
 *   copro spin    copro_run() of the built-in "echo" model, client
 *                 COPRO_IDLE_SPIN against `coprod -i spin`
 *   copro block   the same with COPRO_IDLE_BLOCK and the least client spin
 *                 (spin_ns = 1; 0 means the 20 us default) against
 *                 `coprod -i sleep` with spin_us = 0: both sides sleep
 *   copro block, srv spins  the same client against `coprod -i sleep` with
 *                 its spin_us = 50 default (not a target row: the server
 *                 spinning 50 us after each request hides its wake-up)
 *   copro tput    one client keeping --depth echo requests in flight with
 *                 batched copro_submit() and copro_poll()/copro_wait()
 *
 * Rows are measured in rounds: every round runs a share of every row, in
 * the order below, so a change in the machine during the run (a vCPU moved
 * on the host, a neighbour's load) lands on the baselines and the copro rows
 * alike instead of on whichever row ran at the time. Each round starts its
 * processes afresh and warms up before it measures.
 *
 * Every ping-pong is timed the same way: the clock starts before the payload
 * is written into the transport and stops after the echoed payload has been
 * checked (a sequence number stamped into its first and last bytes), so no
 * row measures less work than another. The benchmark prints one table with
 * the ratios the project's targets are stated in, then the targets and
 * whether this run met them. Every child process and every coprod it starts
 * ends by itself (bounded loops, PR_SET_PDEATHSIG, a watchdog alarm), and is
 * killed by PID on any error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "copro.h"
#include "ring.h"

#define MAX_SIZES		8
#define MAX_ROUNDS		32
#define MAX_BYTES		(1U << 16)	/* largest payload: one SEQPACKET datagram */
#define RING_SLOTS		64		/* entries per raw ring */
#define WAIT_NS			(10ULL * 1000000000ULL)	/* longest wait for one reply */
#define COPRO_TIMEOUT_NS	(5LL * 1000000000LL)
#define WARM_CAP_NS		(3ULL * 1000000000ULL)	/* longest warm-up of a round */
#define ROW_ALARM_S		90		/* watchdog per round of a row: kills all */
#define COPROD_START_NS		(5ULL * 1000000000ULL)
#define COPROD_STOP_NS		(3ULL * 1000000000ULL)

/* ------------------------------------------------------------------------ */
/* options and results                                                       */
/* ------------------------------------------------------------------------ */

enum row {
	ROW_SHM,
	ROW_EFD,
	ROW_UNIX,
	ROW_TCP,
	ROW_SPIN,
	ROW_BLOCK,
	ROW_BLOCK_SSPIN,	/* blocking client, server spins before sleeping */
	ROW_TPUT,
	N_ROWS
};

static const char *const row_key[N_ROWS] = {
	"shm", "eventfd", "unix", "tcp", "spin", "block", "block-sspin", "tput",
};

static const char *const row_name[N_ROWS] = {
	"shm ring (spin)",
	"eventfd (block)",
	"unix seqpacket",
	"tcp loopback",
	"copro spin",
	"copro block",
	"copro block, srv spins",
	"copro tput",
};

/* The order rows run in within a round: each copro row after its baseline. */
static const int run_order[N_ROWS] = {
	ROW_SHM, ROW_SPIN, ROW_EFD, ROW_BLOCK, ROW_BLOCK_SSPIN, ROW_UNIX, ROW_TCP, ROW_TPUT,
};

#define DEFAULT_ROWS	((1U << ROW_SHM) | (1U << ROW_EFD) | (1U << ROW_UNIX) |	\
			 (1U << ROW_TCP) | (1U << ROW_SPIN) | (1U << ROW_BLOCK) |	\
			 (1U << ROW_BLOCK_SSPIN) | (1U << ROW_TPUT))

struct bench_opts {
	size_t bytes[MAX_SIZES];
	unsigned int n_bytes;
	uint64_t iters;		/* measured round trips per row */
	uint64_t warmup;	/* unmeasured round trips first */
	uint64_t tput_count;	/* measured completions in the throughput row */
	unsigned int rounds;	/* every row is measured in this many interleaved parts */
	unsigned int depth;	/* requests in flight in the throughput row */
	double row_seconds;	/* time cap of one row's measured part, all rounds */
	unsigned int server_spin_us;	/* coprod spin_us for the block-sspin row */
	uint32_t client_spin_ns;	/* spin_ns of the blocking client rows */
	const char *coprod;
	unsigned int rows;	/* bitmask of enum row */
	int json;
	int pin;
	int strict;
	int verbose;		/* coprod's status after each copro row, on stderr */
};

/* One row over all rounds: the samples, then what summarise() makes of them. */
struct result {
	uint64_t *s;		/* latency samples of every round, ns */
	uint64_t n, cap;
	uint64_t elapsed_ns;	/* measured wall time, summed over rounds */
	uint64_t reqs;		/* round trips or completions measured */
	unsigned int rounds;	/* rounds measured */
	double round_val[MAX_ROUNDS];	/* per round: p50 in ns (tput: req/s) */
	int capped;		/* a round stopped at its time cap */
	int warm_cut;		/* a round's warm-up stopped at WARM_CAP_NS */
	int done;		/* summarised */
	uint64_t min, p50, p90, p99, p999, max;	/* ns */
	double rps;
	char err[160];
};

/* What one round of one row does: its share of the row's counts. */
struct chunk {
	uint64_t iters;		/* measured round trips (tput: completions) */
	uint64_t warmup;	/* unmeasured round trips first */
	uint64_t cap_ns;	/* time cap of the measured part */
	uint64_t warm_ns;	/* tput: warm-up time */
};

static struct bench_opts opt;
static struct chunk ck;
static int cpu_a = -1, cpu_b = -1;	/* client/pinger CPU, server/ponger CPU */

/* What the watchdog and the error paths must clean up (by PID, by path). */
static volatile pid_t child_pid;
static volatile pid_t coprod_pid;
static char tmp_dir[64];
static char sock_path[128];
static char conf_path[128];
static char log_path[128];

/* ------------------------------------------------------------------------ */
/* small helpers                                                              */
/* ------------------------------------------------------------------------ */

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static void errf(struct result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err[0])
		return;		/* keep the first error */
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

/*
 * Writes seq into the first and (for payloads of 16 bytes and more) the last
 * 8 bytes of buf, so an echo that dropped or truncated the payload fails
 * check_stamp(). Payloads under 8 bytes carry the low bytes of seq.
 */
static void stamp(uint8_t *buf, size_t len, uint64_t seq)
{
	memcpy(buf, &seq, len < 8 ? len : 8);
	if (len >= 16)
		memcpy(buf + len - 8, &seq, 8);
}

static int check_stamp(const uint8_t *buf, size_t len, uint64_t seq)
{
	if (memcmp(buf, &seq, len < 8 ? len : 8) != 0)
		return -1;
	if (len >= 16 && memcmp(buf + len - 8, &seq, 8) != 0)
		return -1;
	return 0;
}

static int pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted samples: the smallest value >= p of them. */
static uint64_t pct(const uint64_t *s, uint64_t n, double p)
{
	uint64_t k = (uint64_t)ceil(p * (double)n);

	if (k == 0)
		k = 1;
	if (k > n)
		k = n;
	return s[k - 1];
}

/*
 * Warm-up and measurement of one round of a ping-pong row. Warm-up ends
 * after ck.warmup round trips or WARM_CAP_NS, whichever comes first;
 * measuring ends after ck.iters samples or ck.cap_ns, whichever comes first.
 * So a row ends in bounded time even on a machine too busy to keep up.
 */
struct phase {
	uint64_t warm_end;	/* warm-up stops here at the latest */
	uint64_t t_start;	/* first measured round trip began */
	uint64_t cap_end;	/* measuring stops here at the latest */
	uint64_t t_last;	/* last measured round trip ended */
	uint64_t n0;		/* r->n when this round began */
	int measuring;
};

static void phase_init(struct phase *p, const struct result *r)
{
	memset(p, 0, sizeof(*p));
	p->warm_end = now_ns() + WARM_CAP_NS;
	p->n0 = r->n;
}

/* Before round trip i: whether it is measured. */
static int phase_step(struct phase *p, struct result *r, uint64_t i)
{
	if (!p->measuring && (i >= ck.warmup || now_ns() > p->warm_end)) {
		if (i < ck.warmup)
			r->warm_cut = 1;
		p->measuring = 1;
		p->t_start = now_ns();
		p->cap_end = p->t_start + ck.cap_ns;
	}
	return p->measuring;
}

/* Records a measured round trip that ended at t1; 1 when the round is done. */
static int phase_record(struct phase *p, struct result *r, uint64_t ns, uint64_t t1)
{
	r->s[r->n++] = ns;
	p->t_last = t1;
	if (r->n - p->n0 >= ck.iters || r->n == r->cap)
		return 1;
	if (t1 > p->cap_end) {
		r->capped = 1;
		return 1;
	}
	return 0;
}

/*
 * Closes a round that measured the samples r->s[n0..n) and reqs requests in
 * elapsed_ns: adds them to the row's totals and keeps the round's own p50
 * (or, with val set, val) to show how much the rounds differ.
 */
static void round_done(struct result *r, uint64_t n0, uint64_t reqs, uint64_t elapsed_ns,
		       double val)
{
	uint64_t n = r->n - n0;

	r->reqs += reqs;
	r->elapsed_ns += elapsed_ns;
	if (r->rounds == MAX_ROUNDS)
		return;
	if (!val && n) {
		uint64_t *tmp = malloc(n * sizeof(*tmp));

		if (tmp) {
			memcpy(tmp, r->s + n0, n * sizeof(*tmp));
			qsort(tmp, n, sizeof(*tmp), cmp_u64);
			val = (double)pct(tmp, n, 0.50);
			free(tmp);
		}
	}
	r->round_val[r->rounds++] = val;
}

/* Sorts every round's samples together into r; rps from the measured time. */
static void summarise(struct result *r)
{
	uint64_t n = r->n;

	if (n == 0) {
		errf(r, "no samples");
		return;
	}
	qsort(r->s, n, sizeof(*r->s), cmp_u64);
	r->min = r->s[0];
	r->p50 = pct(r->s, n, 0.50);
	r->p90 = pct(r->s, n, 0.90);
	r->p99 = pct(r->s, n, 0.99);
	r->p999 = pct(r->s, n, 0.999);
	r->max = r->s[n - 1];
	if (r->elapsed_ns)
		r->rps = (double)r->reqs * 1e9 / (double)r->elapsed_ns;
	r->done = 1;
}

/* The smallest and largest per-round value of a row. */
static void round_range(const struct result *r, double *lo, double *hi)
{
	unsigned int i;

	*lo = *hi = r->rounds ? r->round_val[0] : 0;
	for (i = 1; i < r->rounds; i++) {
		if (r->round_val[i] < *lo)
			*lo = r->round_val[i];
		if (r->round_val[i] > *hi)
			*hi = r->round_val[i];
	}
}

/* ------------------------------------------------------------------------ */
/* processes: children, the watchdog, coprod                                 */
/* ------------------------------------------------------------------------ */

static void cleanup_files(void)
{
	if (sock_path[0])
		unlink(sock_path);
	if (conf_path[0])
		unlink(conf_path);
	if (log_path[0])
		unlink(log_path);
	if (tmp_dir[0])
		rmdir(tmp_dir);
}

/* SIGALRM (a row hung), SIGINT, SIGTERM: kill what we started, by PID, and leave. */
static void on_fatal_signal(int sig)
{
	static const char msg[] = "transport: watchdog/signal: killing children and exiting\n";
	pid_t p;

	/* kill() and waitpid() are async-signal-safe: reap, leave no zombie. */
	p = child_pid;
	if (p > 0 && !kill(p, SIGKILL))
		waitpid(p, NULL, 0);
	p = coprod_pid;
	if (p > 0 && !kill(p, SIGKILL))
		waitpid(p, NULL, 0);
	cleanup_files();	/* unlink and rmdir are async-signal-safe */
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(2);
}

/*
 * Forks a ponger that runs fn(arg) pinned to cpu_b and exits with its
 * result. It dies with us (PR_SET_PDEATHSIG) and on its own alarm, so it
 * cannot outlive the benchmark. Returns its pid or -errno.
 */
static pid_t spawn_child(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(3);
		alarm(ROW_ALARM_S + 5);
		if (opt.pin && pin_to(cpu_b))
			_exit(4);
		_exit(fn(arg) ? 1 : 0);
	}
	child_pid = pid;
	return pid;
}

/* Waits for the ponger; kills it first when the pinger failed. */
static void reap_child(pid_t pid, struct result *r, int kill_it)
{
	int st = 0;

	if (pid <= 0)
		return;
	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	if (!kill_it && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		errf(r, "ponger failed (status 0x%x)", st);
}

/* Prints the last lines coprod logged, to explain a failed start. */
static void show_log(void)
{
	char buf[2048];
	ssize_t n;
	off_t sz;
	int fd = open(log_path, O_RDONLY);

	if (fd < 0)
		return;
	sz = lseek(fd, 0, SEEK_END);
	lseek(fd, sz > (off_t)sizeof(buf) - 1 ? sz - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		fprintf(stderr, "transport: coprod log (%s):\n%s", log_path, buf);
	}
}

/* Sends SIGTERM to the coprod we started, waits for the drain, then SIGKILL. */
static void coprod_stop(void)
{
	pid_t pid = coprod_pid;
	uint64_t end = now_ns() + COPROD_STOP_NS;
	int st = 0;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ns() > end) {
			fprintf(stderr, "transport: coprod %d ignored SIGTERM for %llu s, killing\n",
				(int)pid, (unsigned long long)(COPROD_STOP_NS / 1000000000ULL));
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(2000);
	}
	coprod_pid = 0;
	unlink(sock_path);
}

/*
 * Starts `coprod -s SOCK -i IDLE [-c CONF]` pinned to cpu_b, its output in
 * a log file, and connects to it with *co. Writes a config file setting
 * spin_us when spin_us >= 0. Returns 0 with *c connected, or a negative code
 * with coprod stopped.
 */
static int coprod_start(const char *idle, int spin_us, const struct copro_opts *co,
			struct copro_client **c, struct result *r)
{
	uint64_t end;
	pid_t pid, parent = getpid();
	int err = -ENOENT;

	if (access(opt.coprod, X_OK)) {
		errf(r, "no coprod at %s (set BUILD or --coprod)", opt.coprod);
		return -ENOENT;
	}
	if (spin_us >= 0) {
		FILE *f = fopen(conf_path, "w");

		if (!f) {
			errf(r, "%s: %s", conf_path, strerror(errno));
			return -errno;
		}
		fprintf(f, "[server]\nspin_us = %d\n", spin_us);
		fclose(f);
	}
	unlink(sock_path);

	pid = fork();
	if (pid < 0) {
		errf(r, "fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		const char *argv[10];
		int a = 0;

		signal(SIGALRM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (opt.pin)
			pin_to(cpu_b);
		argv[a++] = opt.coprod;
		argv[a++] = "-s";
		argv[a++] = sock_path;
		argv[a++] = "-i";
		argv[a++] = idle;
		if (spin_us >= 0) {
			argv[a++] = "-c";
			argv[a++] = conf_path;
		}
		argv[a] = NULL;
		execv(opt.coprod, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", opt.coprod, strerror(errno));
		_exit(127);
	}
	coprod_pid = pid;

	/* Wait for the socket: retry the connect until it works or coprod died. */
	end = now_ns() + COPROD_START_NS;
	for (;;) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			coprod_pid = 0;
			errf(r, "coprod exited at start (status 0x%x)", st);
			show_log();
			return -ECHILD;
		}
		err = copro_connect(sock_path, co, c);
		if (err == 0)
			return 0;
		if ((err != -ENOENT && err != -ECONNREFUSED) || now_ns() > end)
			break;
		usleep(5000);
	}
	errf(r, "copro_connect(%s): %s", sock_path, copro_strerror(err));
	show_log();
	coprod_stop();
	return err;
}

/* ------------------------------------------------------------------------ */
/* row: raw shared-memory rings, both sides spinning                         */
/* ------------------------------------------------------------------------ */

/* A descriptor: one 64-byte ring slot. The payload lives in the slot area. */
struct shm_desc {
	uint64_t seq;
	uint64_t data_off;	/* offset of the payload in the mapping */
	uint32_t len;
	uint32_t stop;		/* 1: the pinger is done, exit */
	uint8_t pad[40];
};
_Static_assert(sizeof(struct shm_desc) == 64, "shm_desc is one slot");

/* One ring's shared part: producer line, consumer line, slots. */
struct shm_ring_area {
	_Atomic uint32_t tail;
	uint8_t pad0[COPRO_CACHELINE - 4];
	_Atomic uint32_t head;
	uint8_t pad1[COPRO_CACHELINE - 4];
	struct shm_desc slot[RING_SLOTS];
};

/*
 * The mapping: two rings, then one payload slot per direction. A ping-pong
 * has one message in flight, and copro's echo reuses one input and one
 * output tensor, so one slot each is the like-for-like floor: a slot area
 * that rotated with the ring index would walk megabytes of cache at 64 KiB
 * payloads and make the floor slower than what it bounds.
 */
struct shm_map {
	struct shm_ring_area ping;	/* pinger produces */
	struct shm_ring_area pong;	/* ponger produces */
	/* then the ping payload slot, then the pong payload slot */
};

struct shm_ctx {
	uint8_t *base;
	size_t stride;		/* bytes per payload slot, cache-line rounded */
	size_t bytes;
	uint64_t total;		/* warm-up + measured round trips */
};

static void shm_ring_view(struct copro_ring *r, struct shm_ring_area *a)
{
	r->tail = &a->tail;
	r->head = &a->head;
	r->entries = (uint8_t *)a->slot;
	r->mask = RING_SLOTS - 1;
	r->entry_size = sizeof(struct shm_desc);
	r->local = 0;
	r->cached = 0;
}

static size_t shm_data_off(const struct shm_ctx *x, int pong)
{
	return sizeof(struct shm_map) + (size_t)pong * x->stride;
}

/* Spins until the consumer ring has an entry; -ETIMEDOUT after WAIT_NS. */
static int shm_wait_ready(struct copro_ring *r)
{
	uint64_t end = 0;
	uint32_t spins = 0;

	for (;;) {
		uint32_t n = copro_ring_ready(r);

		if (n == UINT32_MAX)
			return -EPROTO;
		if (n)
			return 0;
		cpu_relax();
		if (++spins % 4096 == 0) {
			uint64_t t = now_ns();

			if (!end)
				end = t + WAIT_NS;
			else if (t > end)
				return -ETIMEDOUT;
		}
	}
}

/* Spins until the producer ring has room (it always has, one in flight). */
static int shm_wait_space(struct copro_ring *r)
{
	uint64_t end = now_ns() + WAIT_NS;

	while (!copro_ring_space(r, 1)) {
		cpu_relax();
		if (now_ns() > end)
			return -ETIMEDOUT;
	}
	return 0;
}

/* The ponger: take a ping, copy its payload into a pong slot, publish it. */
static int shm_ponger(void *arg)
{
	struct shm_ctx *x = arg;
	struct shm_map *m = (struct shm_map *)x->base;
	struct copro_ring in, out;
	uint64_t i;

	shm_ring_view(&in, &m->ping);
	shm_ring_view(&out, &m->pong);
	for (i = 0; i < x->total; i++) {
		struct shm_desc d, *o;
		size_t doff;

		if (shm_wait_ready(&in))
			return -1;
		d = *(struct shm_desc *)copro_ring_cons_slot(&in, 0);
		if (d.stop)
			return 0;
		if (d.len > x->bytes || d.data_off != shm_data_off(x, 0))
			return -1;
		if (shm_wait_space(&out))
			return -1;
		doff = shm_data_off(x, 1);
		memcpy(x->base + doff, x->base + d.data_off, d.len);
		copro_ring_release(&in, 1);
		o = copro_ring_prod_slot(&out, 0);
		o->seq = d.seq;
		o->data_off = doff;
		o->len = d.len;
		o->stop = 0;
		copro_ring_publish(&out, 1);
	}
	return 0;
}

static void run_shm(size_t bytes, struct result *r)
{
	struct shm_ctx x = { .bytes = bytes };
	struct copro_ring out, in;
	struct shm_map *m;
	uint8_t buf[MAX_BYTES];
	uint64_t i;
	struct phase ph;
	size_t map_len;
	pid_t pid;

	x.stride = (bytes + COPRO_CACHELINE - 1) & ~(size_t)(COPRO_CACHELINE - 1);
	x.total = ck.warmup + ck.iters;
	map_len = sizeof(struct shm_map) + 2 * x.stride;
	x.base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (x.base == MAP_FAILED) {
		errf(r, "mmap: %s", strerror(errno));
		return;
	}
	m = (struct shm_map *)x.base;
	shm_ring_view(&out, &m->ping);
	shm_ring_view(&in, &m->pong);
	memset(buf, 0xa5, sizeof(buf));

	pid = spawn_child(shm_ponger, &x);
	if (pid < 0) {
		errf(r, "fork: %s", strerror(-pid));
		goto out;
	}
	phase_init(&ph, r);
	for (i = 0; i < x.total; i++) {
		struct shm_desc *d;
		const struct shm_desc *e;
		uint64_t t0, t1;
		int measured;
		size_t doff;

		measured = phase_step(&ph, r, i);
		stamp(buf, bytes, i);
		t0 = now_ns();
		if (shm_wait_space(&out)) {
			errf(r, "ping ring stuck");
			break;
		}
		doff = shm_data_off(&x, 0);
		memcpy(x.base + doff, buf, bytes);
		d = copro_ring_prod_slot(&out, 0);
		d->seq = i;
		d->data_off = doff;
		d->len = (uint32_t)bytes;
		d->stop = 0;
		copro_ring_publish(&out, 1);
		if (shm_wait_ready(&in)) {
			errf(r, "no pong within %llu s", (unsigned long long)(WAIT_NS / 1000000000ULL));
			break;
		}
		e = copro_ring_cons_slot(&in, 0);
		if (e->seq != i || e->len != bytes || e->data_off != shm_data_off(&x, 1) ||
		    check_stamp(x.base + e->data_off, bytes, i)) {
			errf(r, "bad pong at %llu", (unsigned long long)i);
			break;
		}
		copro_ring_release(&in, 1);
		t1 = now_ns();
		if (measured && phase_record(&ph, r, t1 - t0, t1)) {
			i++;
			break;
		}
	}
	if (!r->err[0] && i < x.total && !shm_wait_space(&out)) {
		struct shm_desc *d = copro_ring_prod_slot(&out, 0);

		d->stop = 1;
		copro_ring_publish(&out, 1);
	}
	reap_child(pid, r, r->err[0] != 0);
	if (!r->err[0])
		round_done(r, ph.n0, r->n - ph.n0, ph.t_last - ph.t_start, 0);
out:
	munmap(x.base, map_len);
}

/* ------------------------------------------------------------------------ */
/* row: eventfd, both sides blocked in read()                                */
/* ------------------------------------------------------------------------ */

struct efd_ctx {
	uint8_t *base;		/* shared: [0] stop flag line, then ping and pong areas */
	size_t stride;
	size_t bytes;
	uint64_t total;
	int to_pong;		/* pinger writes, ponger reads */
	int to_ping;		/* ponger writes, pinger reads */
};

#define EFD_STOP(x)	((_Atomic uint32_t *)(x)->base)
#define EFD_PING(x)	((x)->base + COPRO_CACHELINE)
#define EFD_PONG(x)	((x)->base + COPRO_CACHELINE + (x)->stride)

static int efd_read(int fd)
{
	uint64_t v;
	ssize_t n;

	do
		n = read(fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	return n == sizeof(v) ? 0 : -1;
}

static int efd_write(int fd)
{
	uint64_t v = 1;
	ssize_t n;

	do
		n = write(fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	return n == sizeof(v) ? 0 : -1;
}

static int efd_ponger(void *arg)
{
	struct efd_ctx *x = arg;
	uint64_t i;

	for (i = 0; i < x->total; i++) {
		if (efd_read(x->to_pong))
			return -1;
		/* The eventfd's read/write order the payload; the flag is read after it. */
		if (atomic_load_explicit(EFD_STOP(x), memory_order_acquire))
			return 0;
		memcpy(EFD_PONG(x), EFD_PING(x), x->bytes);
		if (efd_write(x->to_ping))
			return -1;
	}
	return 0;
}

static void run_efd(size_t bytes, struct result *r)
{
	struct efd_ctx x = { .bytes = bytes, .to_pong = -1, .to_ping = -1 };
	uint8_t buf[MAX_BYTES];
	uint64_t i;
	struct phase ph;
	size_t map_len;
	pid_t pid = -1;

	x.stride = (bytes + COPRO_CACHELINE - 1) & ~(size_t)(COPRO_CACHELINE - 1);
	x.total = ck.warmup + ck.iters;
	map_len = COPRO_CACHELINE + 2 * x.stride;
	x.base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (x.base == MAP_FAILED) {
		errf(r, "mmap: %s", strerror(errno));
		return;
	}
	x.to_pong = eventfd(0, EFD_CLOEXEC);
	x.to_ping = eventfd(0, EFD_CLOEXEC);
	if (x.to_pong < 0 || x.to_ping < 0) {
		errf(r, "eventfd: %s", strerror(errno));
		goto out;
	}
	memset(buf, 0xa5, sizeof(buf));
	pid = spawn_child(efd_ponger, &x);
	if (pid < 0) {
		errf(r, "fork: %s", strerror(-pid));
		goto out;
	}
	phase_init(&ph, r);
	for (i = 0; i < x.total; i++) {
		uint64_t t0, t1;
		int measured;

		measured = phase_step(&ph, r, i);
		stamp(buf, bytes, i);
		t0 = now_ns();
		memcpy(EFD_PING(&x), buf, bytes);
		if (efd_write(x.to_pong) || efd_read(x.to_ping)) {
			errf(r, "eventfd: %s", strerror(errno));
			break;
		}
		if (check_stamp(EFD_PONG(&x), bytes, i)) {
			errf(r, "bad pong at %llu", (unsigned long long)i);
			break;
		}
		t1 = now_ns();
		if (measured && phase_record(&ph, r, t1 - t0, t1)) {
			i++;
			break;
		}
	}
	if (!r->err[0] && i < x.total) {
		atomic_store_explicit(EFD_STOP(&x), 1, memory_order_release);
		efd_write(x.to_pong);
	}
	reap_child(pid, r, r->err[0] != 0);
	if (!r->err[0])
		round_done(r, ph.n0, r->n - ph.n0, ph.t_last - ph.t_start, 0);
out:
	if (x.to_pong >= 0)
		close(x.to_pong);
	if (x.to_ping >= 0)
		close(x.to_ping);
	munmap(x.base, map_len);
}

/* ------------------------------------------------------------------------ */
/* rows: UNIX SOCK_SEQPACKET and TCP loopback, blocking                       */
/* ------------------------------------------------------------------------ */

struct sock_ctx {
	int fd;			/* the ponger's end */
	int stream;		/* TCP: loop until the whole payload moved */
	size_t bytes;
	uint64_t total;
};

/* Reads exactly len bytes (stream) or one message of len bytes (seqpacket). */
static int sock_read(int fd, uint8_t *buf, size_t len, int stream)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, stream ? len - got : MAX_BYTES, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;	/* error or EOF: the peer is done */
		got += (size_t)n;
		if (!stream)
			return got == len ? 0 : -1;
	}
	return 0;
}

static int sock_write(int fd, const uint8_t *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = send(fd, buf + put, len - put, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		put += (size_t)n;
	}
	return 0;
}

static int sock_ponger(void *arg)
{
	struct sock_ctx *x = arg;
	static uint8_t buf[MAX_BYTES];
	uint64_t i;

	for (i = 0; i < x->total; i++) {
		if (sock_read(x->fd, buf, x->bytes, x->stream))
			return 0;	/* the pinger closed: done */
		if (sock_write(x->fd, buf, x->bytes))
			return -1;
	}
	return 0;
}

static void sock_pingpong(int fd, int peer_fd, int stream, size_t bytes, struct result *r)
{
	struct sock_ctx x = { .fd = peer_fd, .stream = stream, .bytes = bytes };
	static uint8_t buf[MAX_BYTES], rbuf[MAX_BYTES];
	uint64_t i;
	struct phase ph;
	pid_t pid;

	x.total = ck.warmup + ck.iters;
	memset(buf, 0xa5, sizeof(buf));
	pid = spawn_child(sock_ponger, &x);
	if (pid < 0) {
		errf(r, "fork: %s", strerror(-pid));
		return;
	}
	close(peer_fd);
	phase_init(&ph, r);
	for (i = 0; i < x.total; i++) {
		uint64_t t0, t1;
		int measured;

		measured = phase_step(&ph, r, i);
		stamp(buf, bytes, i);
		t0 = now_ns();
		if (sock_write(fd, buf, bytes) || sock_read(fd, rbuf, bytes, stream)) {
			errf(r, "send/recv: %s", strerror(errno));
			break;
		}
		if (check_stamp(rbuf, bytes, i)) {
			errf(r, "bad pong at %llu", (unsigned long long)i);
			break;
		}
		t1 = now_ns();
		if (measured && phase_record(&ph, r, t1 - t0, t1)) {
			i++;
			break;
		}
	}
	close(fd);		/* EOF tells an early-stopped ponger to exit */
	reap_child(pid, r, r->err[0] != 0);
	if (!r->err[0])
		round_done(r, ph.n0, r->n - ph.n0, ph.t_last - ph.t_start, 0);
}

static void run_unix(size_t bytes, struct result *r)
{
	int sv[2];
	int sz = 4 * MAX_BYTES;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		errf(r, "socketpair: %s", strerror(errno));
		return;
	}
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	sock_pingpong(sv[0], sv[1], 0, bytes, r);
}

static void run_tcp(size_t bytes, struct result *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1;
	int lfd, cfd = -1, sfd = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen)) {
		errf(r, "listen on 127.0.0.1: %s", strerror(errno));
		goto out;
	}
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&a, sizeof(a))) {
		errf(r, "connect 127.0.0.1:%d: %s", ntohs(a.sin_port), strerror(errno));
		goto out;
	}
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (sfd < 0) {
		errf(r, "accept: %s", strerror(errno));
		goto out;
	}
	if (setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		errf(r, "TCP_NODELAY: %s", strerror(errno));
		goto out;
	}
	close(lfd);
	sock_pingpong(cfd, sfd, 1, bytes, r);
	return;
out:
	if (sfd >= 0)
		close(sfd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
}

/* ------------------------------------------------------------------------ */
/* rows: copro echo round trips                                              */
/* ------------------------------------------------------------------------ */

/* With --verbose, shows what coprod says about itself (poller sleeps, wake-ups). */
static void show_status(struct copro_client *c, const char *row)
{
	static char buf[8192];
	int n;

	if (!opt.verbose || !c)
		return;
	n = copro_status(c, buf, sizeof(buf));
	if (n >= 0)
		fprintf(stderr, "transport: coprod status after %s:\n%s\n", row, buf);
}

/* Looks up echo and allocates an input and an output tensor of bytes each. */
static int echo_setup(struct copro_client *c, size_t bytes, uint32_t *handle,
		      struct copro_tensor *tin, struct copro_tensor *tout, struct result *r)
{
	struct copro_model_info mi;
	uint64_t dims[1] = { bytes };
	int err;

	err = copro_lookup(c, "echo", &mi);
	if (err) {
		errf(r, "copro_lookup(echo): %s", copro_strerror(err));
		return err;
	}
	*handle = mi.handle;
	err = copro_tensor_alloc(c, COPRO_DT_U8, 1, dims, tin);
	if (!err)
		err = copro_tensor_alloc(c, COPRO_DT_U8, 1, dims, tout);
	if (err)
		errf(r, "copro_tensor_alloc(%zu): %s", bytes, copro_strerror(err));
	return err;
}

/* Arena for depth pairs of tensors of bytes each, with room to spare. */
static uint64_t arena_for(size_t bytes, unsigned int depth)
{
	uint64_t need = 2ULL * depth * ((bytes + 63) & ~63ULL) * 2 + (1ULL << 20);

	return need < (4ULL << 20) ? 0 : need;
}

/*
 * Ping-pong through coprod's echo with copro_run(): the client writes the
 * payload into its input tensor, runs, and checks the output tensor.
 */
static void run_copro(const char *srv_idle, int srv_spin_us, uint32_t idle,
		      size_t bytes, struct result *r)
{
	/*
	 * spin_ns = 1, not 0: the library reads 0 as "default" (20 us), and a
	 * blocking client that spins 20 us would catch most replies without
	 * sleeping. 1 ns is the least spin the API can ask for; the library
	 * still polls the ring ~64 times before its first clock check.
	 */
	struct copro_opts co = {
		.idle = idle,
		.spin_ns = idle == COPRO_IDLE_BLOCK ? opt.client_spin_ns : 0,
		.arena_bytes = arena_for(bytes, 1),
	};
	const struct copro_tensor *ins[1], *outs[1];
	struct copro_tensor tin, tout;
	struct copro_request req;
	struct copro_client *c = NULL;
	uint8_t buf[MAX_BYTES];
	uint64_t i, total = ck.warmup + ck.iters;
	struct phase ph;
	uint32_t handle;

	if (coprod_start(srv_idle, srv_spin_us, &co, &c, r))
		return;
	if (echo_setup(c, bytes, &handle, &tin, &tout, r))
		goto out;
	ins[0] = &tin;
	outs[0] = &tout;
	memset(&req, 0, sizeof(req));
	req.model = handle;
	req.n_in = 1;
	req.n_out = 1;
	req.in = ins;
	req.out = outs;
	memset(buf, 0xa5, sizeof(buf));

	phase_init(&ph, r);
	for (i = 0; i < total; i++) {
		uint64_t t0, t1;
		int measured;
		int res;

		measured = phase_step(&ph, r, i);
		stamp(buf, bytes, i);
		req.user_data = i;
		t0 = now_ns();
		memcpy(tin.data, buf, bytes);
		res = copro_run(c, &req, COPRO_TIMEOUT_NS);
		if (res != (int)bytes) {
			errf(r, "copro_run at %llu: %d (%s)", (unsigned long long)i, res,
			     res < 0 ? copro_strerror(res) : "short echo");
			break;
		}
		if (check_stamp(tout.data, bytes, i)) {
			errf(r, "echo output wrong at %llu", (unsigned long long)i);
			break;
		}
		t1 = now_ns();
		if (measured && phase_record(&ph, r, t1 - t0, t1)) {
			i++;
			break;
		}
	}
	if (!r->err[0])
		round_done(r, ph.n0, r->n - ph.n0, ph.t_last - ph.t_start, 0);
	show_status(c, srv_idle);
out:
	copro_close(c);
	coprod_stop();
}

/*
 * Throughput: keep opt.depth echo requests in flight from one client.
 * Freed slots are resubmitted together in one copro_submit() call; reaping
 * takes whatever copro_poll() has, falling back to copro_wait() when nothing
 * was ready and nothing could be submitted. Latency per request is from the
 * submit call that queued it to the reap that saw its completion.
 */
static void run_tput(size_t bytes, struct result *r)
{
	unsigned int depth = opt.depth;
	struct copro_opts co = {
		.idle = COPRO_IDLE_SPIN,
		.sq_entries = depth < 256 ? 256 : depth,
		.arena_bytes = arena_for(bytes, depth),
	};
	struct copro_tensor *tin = calloc(depth, sizeof(*tin));
	struct copro_tensor *tout = calloc(depth, sizeof(*tout));
	const struct copro_tensor **ins = calloc(depth, sizeof(*ins));
	const struct copro_tensor **outs = calloc(depth, sizeof(*outs));
	struct copro_request *reqs = calloc(depth, sizeof(*reqs));
	struct copro_cqe *cqes = calloc(depth, sizeof(*cqes));
	uint64_t *seq = calloc(depth, sizeof(*seq));
	uint64_t *t_sub = calloc(depth, sizeof(*t_sub));
	unsigned int *freel = calloc(depth, sizeof(*freel));
	struct copro_client *c = NULL;
	uint8_t buf[MAX_BYTES];
	uint64_t next_seq = 0, done = 0, n0 = r->n;
	uint64_t n_submits = 0, n_submitted = 0, n_reaps = 0, n_reaped = 0;
	uint64_t t_begin, t_start = 0, t_end = 0, warm_end, hard_end;
	unsigned int n_free = depth, inflight = 0, s;
	uint32_t handle;
	int measuring = 0, err;

	if (!tin || !tout || !ins || !outs || !reqs || !cqes || !seq || !t_sub || !freel) {
		errf(r, "out of memory");
		goto free;
	}
	if (coprod_start("spin", -1, &co, &c, r))
		goto free;
	for (s = 0; s < depth; s++) {
		if (echo_setup(c, bytes, &handle, &tin[s], &tout[s], r))
			goto out;
		ins[s] = &tin[s];
		outs[s] = &tout[s];
		freel[s] = s;
	}
	memset(buf, 0xa5, sizeof(buf));

	t_begin = now_ns();
	warm_end = t_begin + ck.warm_ns;
	hard_end = warm_end + ck.cap_ns;
	for (;;) {
		uint64_t t = now_ns();
		int k, j;

		if (!measuring && t >= warm_end) {
			measuring = 1;
			t_start = t;
			done = 0;
		}
		if (measuring && (done >= ck.iters || t > hard_end)) {
			if (done < ck.iters)
				r->capped = 1;
			t_end = t;
			break;
		}
		/* Submit every free slot in one call. */
		if (n_free) {
			for (j = 0; j < (int)n_free; j++) {
				s = freel[n_free - 1 - j];
				seq[s] = next_seq++;
				stamp(buf, bytes, seq[s]);
				memcpy(tin[s].data, buf, bytes);
				memset(&reqs[j], 0, sizeof(reqs[j]));
				reqs[j].model = handle;
				reqs[j].n_in = 1;
				reqs[j].n_out = 1;
				reqs[j].in = &ins[s];
				reqs[j].out = &outs[s];
				reqs[j].user_data = s;
			}
			k = copro_submit(c, reqs, n_free);
			if (k < 0 && k != -EAGAIN) {
				errf(r, "copro_submit: %s", copro_strerror(k));
				break;
			}
			if (k > 0) {
				t = now_ns();
				for (j = 0; j < k; j++)
					t_sub[reqs[j].user_data] = t;
				n_free -= (unsigned int)k;
				inflight += (unsigned int)k;
				n_submits++;
				n_submitted += (uint64_t)k;
			}
			/* Slots not queued keep their place and get a fresh seq next time. */
		}
		k = copro_poll(c, cqes, depth);
		if (k == 0 && inflight)
			k = copro_wait(c, cqes, depth, COPRO_TIMEOUT_NS);
		if (k < 0) {
			errf(r, "reap: %s", copro_strerror(k));
			break;
		}
		t = now_ns();
		if (k > 0) {
			n_reaps++;
			n_reaped += (uint64_t)k;
		}
		for (j = 0; j < k; j++) {
			uint64_t ud = cqes[j].user_data;

			if (ud >= depth || cqes[j].res != (int32_t)bytes ||
			    check_stamp(tout[ud].data, bytes, seq[ud])) {
				errf(r, "bad completion: user_data %llu res %d",
				     (unsigned long long)ud, cqes[j].res);
				goto out;
			}
			if (measuring && r->n < r->cap)
				r->s[r->n++] = t - t_sub[ud];
			freel[n_free++] = (unsigned int)ud;
			inflight--;
			done++;
		}
	}
	/* Drain what is still in flight so the daemon is idle before it stops. */
	for (s = 0; !r->err[0] && inflight && s < 1000; s++) {
		err = copro_wait(c, cqes, depth, COPRO_TIMEOUT_NS);
		if (err < 0)
			break;
		inflight -= (unsigned int)err;
	}
	if (!r->err[0])
		round_done(r, n0, done, t_end - t_start,
			   (double)done * 1e9 / (double)(t_end - t_start));
	/* Batches near depth mean client and poller take turns instead of overlapping. */
	if (opt.verbose && n_submits && n_reaps)
		fprintf(stderr, "transport: tput: %.1f requests per copro_submit, %.1f completions"
			" per non-empty reap (depth %u)\n", (double)n_submitted / (double)n_submits,
			(double)n_reaped / (double)n_reaps, depth);
	show_status(c, "tput");
out:
	copro_close(c);
	coprod_stop();
free:
	free(tin);
	free(tout);
	free(ins);
	free(outs);
	free(reqs);
	free(cqes);
	free(seq);
	free(t_sub);
	free(freel);
}

/* ------------------------------------------------------------------------ */
/* report                                                                     */
/* ------------------------------------------------------------------------ */

static double us(double ns)
{
	return ns / 1000.0;
}

static void print_ratio(int ok, double v)
{
	if (ok)
		printf(" %8.2fx", v);
	else
		printf(" %9s", "-");
}

static void print_table(size_t bytes, struct result *res)
{
	struct result *shm = &res[ROW_SHM], *efd = &res[ROW_EFD], *ux = &res[ROW_UNIX];
	int k;

	printf("\n%-22s %5s %8s %7s %7s %7s %7s %7s %9s %13s %9s %9s %9s %9s\n",
	       "transport", "bytes", "count", "min", "p50", "p90", "p99", "p99.9", "max",
	       "p50 by round", "req/s", "p50/shm", "unix/p50", "p50/efd");
	for (k = 0; k < N_ROWS; k++) {
		struct result *r = &res[k];
		char range[32];
		double lo, hi;

		if (!(opt.rows & (1U << k)))
			continue;
		printf("%-22s %5zu ", row_name[k], bytes);
		if (!r->done) {
			printf("not measured: %s\n", r->err[0] ? r->err : "skipped");
			continue;
		}
		round_range(r, &lo, &hi);
		if (k == ROW_TPUT)
			snprintf(range, sizeof(range), "%.2f-%.2fM/s", lo / 1e6, hi / 1e6);
		else
			snprintf(range, sizeof(range), "%.2f-%.2f", us(lo), us(hi));
		printf("%8llu %7.2f %7.2f %7.2f %7.2f %7.2f %9.2f %13s %9.0f",
		       (unsigned long long)r->reqs, us(r->min), us(r->p50), us(r->p90),
		       us(r->p99), us(r->p999), us(r->max), range, r->rps);
		print_ratio(shm->done, (double)r->p50 / (double)shm->p50);
		print_ratio(ux->done, (double)ux->p50 / (double)r->p50);
		print_ratio(efd->done, (double)r->p50 / (double)efd->p50);
		if (r->capped)
			printf("  (time cap)");
		if (r->warm_cut)
			printf("  (warm-up cut short)");
		printf("\n");
	}
	printf("  latencies in microseconds: a round trip includes writing the payload and checking"
	       " the echo;\n"
	       "  copro tput: submit -> reap with %u in flight, count = completions.\n"
	       "  p50 by round: the lowest and highest p50 of the %u interleaved rounds"
	       " (tput: req/s).\n"
	       "  p50/shm = row p50 / shm ring p50; unix/p50 = unix seqpacket p50 / row p50;"
	       " p50/efd = row p50 / eventfd p50.\n"
	       "  copro block: coprod -i sleep with spin_us = 0 and a client with spin_ns = %u,"
	       " so both sides sleep;\n"
	       "  copro block, srv spins: the same client, coprod -i sleep with spin_us = %u"
	       " (not a target row).\n", opt.depth, opt.rounds, opt.client_spin_ns,
	       opt.server_spin_us);
}

static void print_json(size_t bytes, struct result *res)
{
	unsigned int i;
	int k;

	for (k = 0; k < N_ROWS; k++) {
		struct result *r = &res[k];

		if (!(opt.rows & (1U << k)))
			continue;
		if (!r->done) {
			printf("{\"type\":\"row\",\"transport\":\"%s\",\"bytes\":%zu,"
			       "\"error\":\"%s\"}\n", row_key[k], bytes,
			       r->err[0] ? r->err : "skipped");
			continue;
		}
		printf("{\"type\":\"row\",\"transport\":\"%s\",\"bytes\":%zu,\"count\":%llu,"
		       "\"min_ns\":%llu,\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu,"
		       "\"p999_ns\":%llu,\"max_ns\":%llu,\"rps\":%.0f,\"capped\":%s,"
		       "\"warm_cut\":%s,\"%s\":[",
		       row_key[k], bytes, (unsigned long long)r->reqs,
		       (unsigned long long)r->min, (unsigned long long)r->p50,
		       (unsigned long long)r->p90, (unsigned long long)r->p99,
		       (unsigned long long)r->p999, (unsigned long long)r->max, r->rps,
		       r->capped ? "true" : "false", r->warm_cut ? "true" : "false",
		       k == ROW_TPUT ? "round_rps" : "round_p50_ns");
		for (i = 0; i < r->rounds; i++)
			printf("%s%.0f", i ? "," : "", r->round_val[i]);
		printf("]");
		if (k == ROW_TPUT)
			printf(",\"depth\":%u", opt.depth);
		printf("}\n");
	}
}

struct target {
	const char *key;
	const char *text;
	int measured;
	int met;
	char value[128];
};

/*
 * Writes the per-round spread of a ratio of two rows' p50s (a over b, or
 * b over a with invert) into buf: the rounds ran side by side, so each
 * round's ratio compares like with like.
 */
static void round_ratios(char *buf, size_t len, const struct result *a, const struct result *b,
			 int invert)
{
	unsigned int i, n = a->rounds < b->rounds ? a->rounds : b->rounds;
	double lo = 0, hi = 0;

	buf[0] = 0;
	for (i = 0; i < n; i++) {
		double v;

		if (!a->round_val[i] || !b->round_val[i])
			return;
		v = invert ? b->round_val[i] / a->round_val[i] : a->round_val[i] / b->round_val[i];
		if (i == 0 || v < lo)
			lo = v;
		if (i == 0 || v > hi)
			hi = v;
	}
	if (n > 1)
		snprintf(buf, len, "; rounds %.2fx-%.2fx", lo, hi);
}

/* Evaluates the five targets on one payload size; returns how many were missed. */
static int targets(size_t bytes, struct result *res)
{
	struct result *shm = &res[ROW_SHM], *efd = &res[ROW_EFD], *ux = &res[ROW_UNIX];
	struct result *spin = &res[ROW_SPIN], *blk = &res[ROW_BLOCK], *tp = &res[ROW_TPUT];
	struct target t[5] = {
		{ .key = "spin_p50_vs_floor", .text = "copro spin p50 <= 2x shm floor p50" },
		{ .key = "spin_p99", .text = "copro spin p99 <= 5 us" },
		{ .key = "unix_vs_spin_p50", .text = "unix seqpacket p50 >= 10x copro spin p50" },
		{ .key = "block_p50_vs_eventfd", .text = "copro block p50 <= 1.5x eventfd p50" },
		{ .key = "tput", .text = "copro throughput >= 1M req/s" },
	};
	char spread[64];
	int i, missed = 0;

	if (spin->done && shm->done) {
		double v = (double)spin->p50 / (double)shm->p50;

		round_ratios(spread, sizeof(spread), spin, shm, 0);
		t[0].measured = 1;
		t[0].met = v <= 2.0;
		snprintf(t[0].value, sizeof(t[0].value), "%.2fx (%.2f us vs %.2f us%s)", v,
			 us(spin->p50), us(shm->p50), spread);
	}
	if (spin->done) {
		t[1].measured = 1;
		t[1].met = spin->p99 <= 5000;
		snprintf(t[1].value, sizeof(t[1].value), "%.2f us", us(spin->p99));
	}
	if (spin->done && ux->done) {
		double v = (double)ux->p50 / (double)spin->p50;

		round_ratios(spread, sizeof(spread), spin, ux, 1);
		t[2].measured = 1;
		t[2].met = v >= 10.0;
		snprintf(t[2].value, sizeof(t[2].value), "%.1fx (%.2f us vs %.2f us%s)", v,
			 us(ux->p50), us(spin->p50), spread);
	}
	if (blk->done && efd->done) {
		double v = (double)blk->p50 / (double)efd->p50;

		round_ratios(spread, sizeof(spread), blk, efd, 0);
		t[3].measured = 1;
		t[3].met = v <= 1.5;
		snprintf(t[3].value, sizeof(t[3].value), "%.2fx (%.2f us vs %.2f us%s)", v,
			 us(blk->p50), us(efd->p50), spread);
	}
	if (tp->done) {
		double lo, hi;

		round_range(tp, &lo, &hi);
		t[4].measured = 1;
		t[4].met = tp->rps >= 1e6;
		snprintf(t[4].value, sizeof(t[4].value),
			 "%.2fM req/s at depth %u (rounds %.2f-%.2fM)", tp->rps / 1e6, opt.depth,
			 lo / 1e6, hi / 1e6);
	}

	if (!opt.json)
		printf("\ntargets (%zu bytes):\n", bytes);
	for (i = 0; i < 5; i++) {
		missed += !t[i].measured || !t[i].met;
		if (opt.json) {
			printf("{\"type\":\"target\",\"target\":\"%s\",\"bytes\":%zu,"
			       "\"measured\":%s,\"met\":%s,\"value\":\"%s\"}\n", t[i].key, bytes,
			       t[i].measured ? "true" : "false", t[i].met ? "true" : "false",
			       t[i].value);
			continue;
		}
		printf("  [%s] %-42s %s\n",
		       !t[i].measured ? "n/a " : t[i].met ? "met " : "MISS", t[i].text,
		       t[i].measured ? t[i].value : "not measured");
	}
	return missed;
}

/* ------------------------------------------------------------------------ */
/* rounds                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Allocates and touches every selected row's sample array, so no page fault
 * lands in a measurement. Returns 0 or -ENOMEM.
 */
static int alloc_samples(struct result *res)
{
	int k;

	for (k = 0; k < N_ROWS; k++) {
		struct result *r = &res[k];

		if (!(opt.rows & (1U << k)))
			continue;
		r->cap = k == ROW_TPUT ? opt.tput_count + (uint64_t)opt.depth * opt.rounds :
			 opt.iters;
		r->s = malloc(r->cap * sizeof(*r->s));
		if (!r->s)
			return -ENOMEM;
		memset(r->s, 0, r->cap * sizeof(*r->s));
	}
	return 0;
}

/* A total split over the rounds: the last round takes the remainder. */
static uint64_t share(uint64_t total, unsigned int round)
{
	uint64_t part = total / opt.rounds;

	return round + 1 == opt.rounds ? total - part * (opt.rounds - 1) : part;
}

/*
 * Sets ck for one round of row k: its share of the counts and the time cap.
 * Every round warms up on its own fresh processes; it gets its share of the
 * warm-up but at least 2000 round trips (or all of a smaller --warmup).
 */
static void set_chunk(int k, unsigned int round)
{
	uint64_t floor_warm = opt.warmup < 2000 ? opt.warmup : 2000;

	ck.iters = share(k == ROW_TPUT ? opt.tput_count : opt.iters, round);
	ck.warmup = share(opt.warmup, round);
	if (ck.warmup < floor_warm)
		ck.warmup = floor_warm;
	ck.cap_ns = (uint64_t)(opt.row_seconds * 1e9 / opt.rounds);
	ck.warm_ns = 100000000ULL;	/* tput: 100 ms of saturation first */
	if (!ck.iters)
		ck.iters = 1;
}

static void run_row(int k, size_t bytes, struct result *r)
{
	switch (k) {
	case ROW_SHM:
		run_shm(bytes, r);
		break;
	case ROW_EFD:
		run_efd(bytes, r);
		break;
	case ROW_UNIX:
		run_unix(bytes, r);
		break;
	case ROW_TCP:
		run_tcp(bytes, r);
		break;
	case ROW_SPIN:
		run_copro("spin", -1, COPRO_IDLE_SPIN, bytes, r);
		break;
	case ROW_BLOCK:
		/* Both sides truly sleep: the server does not spin first. */
		run_copro("sleep", 0, COPRO_IDLE_BLOCK, bytes, r);
		break;
	case ROW_BLOCK_SSPIN:
		run_copro("sleep", (int)opt.server_spin_us, COPRO_IDLE_BLOCK, bytes, r);
		break;
	case ROW_TPUT:
		run_tput(bytes, r);
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* main                                                                       */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: transport [options]\n"
		"  -b, --bytes LIST      payload sizes, comma-separated (default 64, max %u)\n"
		"  -n, --iters N         measured round trips per row (default 200000)\n"
		"  -w, --warmup N        unmeasured round trips first (default 20000)\n"
		"  -t, --tput-count N    measured completions in the throughput row (default 3000000)\n"
		"  -q, --depth N         requests in flight in the throughput row (default 64)\n"
		"  -R, --rounds N        measure every row in N interleaved rounds (default 5, max %u)\n"
		"  -T, --row-seconds S   time cap of one row's measured part, all rounds (default 20)\n"
		"  -r, --rows LIST       rows to run (default all): shm,eventfd,unix,tcp,spin,\n"
		"                        block,block-sspin,tput; block-sspin is the blocking\n"
		"                        client against a coprod that spins before sleeping\n"
		"      --server-spin-us N  spin_us of the -i sleep coprod in block-sspin (default 50)\n"
		"      --client-spin-ns N  spin_ns of the blocking client (default 1: least spin;\n"
		"                        0 would mean the library default, 20 us)\n"
		"      --coprod PATH     the daemon (default $BUILD/bin/coprod, BUILD=build)\n"
		"      --no-pin          do not pin the two sides to different CPUs\n"
		"      --json            one JSON object per line instead of the table\n"
		"      --strict          exit 3 when a target is missed\n"
		"  -v, --verbose         print coprod's status after each copro row (stderr)\n"
		"  -h, --help\n", MAX_BYTES, MAX_ROUNDS);
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end ? -1 : 0;
}

static int parse_bytes(char *s)
{
	char *tok, *save = NULL;

	opt.n_bytes = 0;
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (parse_u64(tok, &v) || v == 0 || v > MAX_BYTES || opt.n_bytes == MAX_SIZES)
			return -1;
		opt.bytes[opt.n_bytes++] = (size_t)v;
	}
	return opt.n_bytes ? 0 : -1;
}

static int parse_rows(char *s)
{
	char *tok, *save = NULL;

	opt.rows = 0;
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int k;

		for (k = 0; k < N_ROWS; k++)
			if (!strcmp(tok, row_key[k]))
				break;
		if (k == N_ROWS)
			return -1;
		opt.rows |= 1U << k;
	}
	return opt.rows ? 0 : -1;
}

/* Reads the aggregate cpu line of /proc/stat: busy, total and steal ticks. */
static int cpu_ticks(uint64_t *busy, uint64_t *total, uint64_t *steal)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n, i;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 8)
		return -1;
	*total = 0;
	for (i = 0; i < 8; i++)
		*total += v[i];
	*busy = *total - v[3] - v[4];	/* all but idle and iowait */
	*steal = v[7];
	return 0;
}

/*
 * Samples how busy the machine is while we do nothing, over about half a
 * second: other processes on these CPUs skew every row, so the report says
 * so. Returns the busy share of all CPUs in percent (steal separately), or
 * -1 when /proc/stat cannot be read.
 */
static double machine_busy(double *steal_pct)
{
	uint64_t b0, t0, s0, b1, t1, s1;

	if (cpu_ticks(&b0, &t0, &s0))
		return -1;
	usleep(500000);
	if (cpu_ticks(&b1, &t1, &s1) || t1 == t0)
		return -1;
	*steal_pct = 100.0 * (double)(s1 - s0) / (double)(t1 - t0);
	return 100.0 * (double)(b1 - b0) / (double)(t1 - t0);
}

/* CPU seconds this process and its reaped children (pongers, coprods) used. */
static double own_cpu_s(void)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
			b.ru_stime.tv_sec) +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
			b.ru_stime.tv_usec) / 1e6;
}

/*
 * What the rest of the machine did while we measured: the CPUs' busy time
 * from /proc/stat less our own and our children's. Start with begin = 1,
 * end with begin = 0, which prints the share of all CPU time that went to
 * other work (and to kernel threads working for nobody in particular).
 */
static void report_others(int begin)
{
	static uint64_t b0, t0, s0;
	static double own0, wall0;
	uint64_t b1, t1, s1;
	double hz = (double)sysconf(_SC_CLK_TCK), wall, other, pct_other;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (begin) {
		if (cpu_ticks(&b0, &t0, &s0))
			t0 = 0;
		own0 = own_cpu_s();
		wall0 = (double)now_ns() / 1e9;
		return;
	}
	if (!t0 || cpu_ticks(&b1, &t1, &s1) || hz <= 0 || ncpu <= 0)
		return;
	wall = (double)now_ns() / 1e9 - wall0;
	other = (double)(b1 - b0) / hz - (own_cpu_s() - own0);
	if (other < 0)
		other = 0;
	pct_other = 100.0 * other / (wall * (double)ncpu);
	if (opt.json) {
		printf("{\"type\":\"machine\",\"when\":\"during the run\",\"other_pct\":%.1f,"
		       "\"steal_pct\":%.1f}\n", pct_other,
		       100.0 * (double)(s1 - s0) / (double)(t1 - t0));
		return;
	}
	printf("machine during the run: %.0f%% of all CPU time went to other processes, "
	       "%.0f%% stolen%s\n", pct_other, 100.0 * (double)(s1 - s0) / (double)(t1 - t0),
	       pct_other > 5 ? "  ** WARNING: rows are skewed by other work **" : "");
}

static void report_busy(const char *when)
{
	double steal = 0, busy = machine_busy(&steal);

	if (busy < 0)
		return;
	if (opt.json) {
		printf("{\"type\":\"machine\",\"when\":\"%s\",\"busy_pct\":%.1f,"
		       "\"steal_pct\":%.1f}\n", when, busy, steal);
		return;
	}
	printf("machine %s: %.0f%% of all CPUs busy with other work, %.0f%% stolen%s\n", when,
	       busy, steal, busy > 10 || steal > 5 ?
	       "  ** WARNING: not a quiet machine, rows are skewed **" : "");
}

/* Picks two allowed CPUs for the two sides; -1s when fewer than two. */
static void pick_cpus(void)
{
	cpu_set_t set;
	int i;

	if (sched_getaffinity(0, sizeof(set), &set))
		return;
	for (i = 0; i < CPU_SETSIZE; i++) {
		if (!CPU_ISSET(i, &set))
			continue;
		if (cpu_a < 0)
			cpu_a = i;
		else if (cpu_b < 0)
			cpu_b = i;
	}
	if (cpu_b < 0)
		cpu_a = -1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "iters", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "tput-count", required_argument, NULL, 't' },
		{ "depth", required_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'R' },
		{ "row-seconds", required_argument, NULL, 'T' },
		{ "rows", required_argument, NULL, 'r' },
		{ "server-spin-us", required_argument, NULL, 'S' },
		{ "client-spin-ns", required_argument, NULL, 'N' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "coprod", required_argument, NULL, 'C' },
		{ "no-pin", no_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'J' },
		{ "strict", no_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char coprod_buf[4096];
	struct sigaction sa;
	const char *build = getenv("BUILD");
	unsigned int si;
	int ch, missed = 0, failed = 0;
	uint64_t v;

	opt.bytes[0] = 64;
	opt.n_bytes = 1;
	opt.iters = 200000;
	opt.warmup = 20000;
	opt.tput_count = 3000000;
	opt.rounds = 5;
	opt.depth = 64;
	opt.row_seconds = 20;
	opt.server_spin_us = 50;
	opt.client_spin_ns = 1;
	opt.rows = DEFAULT_ROWS;
	opt.pin = 1;

	while ((ch = getopt_long(argc, argv, "b:n:w:t:q:R:T:r:vh", lo, NULL)) != -1) {
		switch (ch) {
		case 'b':
			if (parse_bytes(optarg))
				goto bad;
			break;
		case 'n':
			if (parse_u64(optarg, &opt.iters) || !opt.iters || opt.iters > 100000000)
				goto bad;
			break;
		case 'w':
			if (parse_u64(optarg, &opt.warmup) || opt.warmup > 100000000)
				goto bad;
			break;
		case 't':
			if (parse_u64(optarg, &opt.tput_count) || !opt.tput_count ||
			    opt.tput_count > 1000000000)
				goto bad;
			break;
		case 'q':
			if (parse_u64(optarg, &v) || !v || v > 4096)
				goto bad;
			opt.depth = (unsigned int)v;
			break;
		case 'R':
			if (parse_u64(optarg, &v) || !v || v > MAX_ROUNDS)
				goto bad;
			opt.rounds = (unsigned int)v;
			break;
		case 'T':
			opt.row_seconds = atof(optarg);
			if (!(opt.row_seconds > 0 && opt.row_seconds <= 60))
				goto bad;
			break;
		case 'r':
			if (parse_rows(optarg))
				goto bad;
			break;
		case 'S':
			if (parse_u64(optarg, &v) || v > 1000000)
				goto bad;
			opt.server_spin_us = (unsigned int)v;
			break;
		case 'N':
			if (parse_u64(optarg, &v) || !v || v > 1000000000)
				goto bad;
			opt.client_spin_ns = (uint32_t)v;
			break;
		case 'v':
			opt.verbose = 1;
			break;
		case 'C':
			opt.coprod = optarg;
			break;
		case 'P':
			opt.pin = 0;
			break;
		case 'J':
			opt.json = 1;
			break;
		case 'X':
			opt.strict = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (!opt.coprod) {
		snprintf(coprod_buf, sizeof(coprod_buf), "%s/bin/coprod",
			 build && *build ? build : "build");
		opt.coprod = coprod_buf;
	}

	/* Samples: the latency rows need iters, the throughput row up to tput_count. */
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/copro-bench.XXXXXX");
	if (!mkdtemp(tmp_dir)) {
		fprintf(stderr, "transport: mkdtemp: %s\n", strerror(errno));
		tmp_dir[0] = 0;
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/coprod.sock", tmp_dir);
	snprintf(conf_path, sizeof(conf_path), "%s/coprod.conf", tmp_dir);
	snprintf(log_path, sizeof(log_path), "%s/coprod.log", tmp_dir);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (opt.pin) {
		pick_cpus();
		if (cpu_a < 0)
			opt.pin = 0;
		else if (pin_to(cpu_a))
			opt.pin = 0;
	}
	if (!opt.json) {
		printf("copro transport benchmark: %llu round trips per row after %llu warm-up,"
		       " in %u interleaved rounds\n", (unsigned long long)opt.iters,
		       (unsigned long long)opt.warmup, opt.rounds);
		if (opt.pin)
			printf("client/pinger pinned to CPU %d, coprod/ponger to CPU %d\n",
			       cpu_a, cpu_b);
		else
			printf("the two sides are not pinned\n");
		printf("coprod: %s\n", opt.coprod);
	}
	report_busy("before the run");
	fflush(stdout);
	report_others(1);

	for (si = 0; si < opt.n_bytes; si++) {
		size_t bytes = opt.bytes[si];
		struct result res[N_ROWS];
		unsigned int round;
		int j, k;

		memset(res, 0, sizeof(res));
		if (alloc_samples(res)) {
			fprintf(stderr, "transport: cannot allocate the samples\n");
			failed++;
			break;
		}
		for (round = 0; round < opt.rounds; round++) {
			for (j = 0; j < N_ROWS; j++) {
				k = run_order[j];
				if (!(opt.rows & (1U << k)) || res[k].err[0])
					continue;
				fprintf(stderr, "transport: %zu bytes, round %u/%u: %s\n", bytes,
					round + 1, opt.rounds, row_name[k]);
				set_chunk(k, round);
				alarm(ROW_ALARM_S);
				run_row(k, bytes, &res[k]);
				alarm(0);
				if (res[k].err[0]) {
					fprintf(stderr, "transport: %s, %zu bytes: %s\n",
						row_name[k], bytes, res[k].err);
					failed++;
				}
			}
		}
		for (k = 0; k < N_ROWS; k++)
			if ((opt.rows & (1U << k)) && !res[k].err[0])
				summarise(&res[k]);
		if (opt.json)
			print_json(bytes, res);
		else
			print_table(bytes, res);
		missed += targets(bytes, res);
		fflush(stdout);
		for (k = 0; k < N_ROWS; k++)
			free(res[k].s);
	}
	report_others(0);
	report_busy("after the run");
	cleanup_files();
	if (failed)
		return 1;
	return opt.strict && missed ? 3 : 0;
bad:
	usage(stderr);
	return 2;
}
