/* SPDX-License-Identifier: MIT */
/*
 * ort_dl.h - ONNX Runtime's C API, opened at run time with dlopen(), for the
 * programs that use ONNX Runtime as a second correctness reference
 * (tests/test_ort_reference.c) and as a baseline (bench/onnx_mlp.c).
 *
 * Nothing links libonnxruntime: the build and `make test` work without it,
 * and both programs skip when it is absent. `make ort` installs ONNX
 * Runtime's CPU build from the npm registry (the onnxruntime-node package,
 * which ships libonnxruntime.so beside its Node binding) under
 * $BUILD/ort; COPRO_ORT_LIB names any other libonnxruntime.so.
 *
 * The npm package ships no C header, so the part of `struct OrtApi` used here
 * is declared below. OrtApi is a table of function pointers that ONNX Runtime
 * only ever appends to; its first 102 slots (0..101, CreateStatus to
 * ReleaseCustomOpDomain) are API version 1, which ONNX Runtime freezes with
 * a static_assert (ReleaseCustomOpDomain at slot 101) in
 * onnxruntime/core/session/onnxruntime_c_api.cc. Every function used here is
 * in that frozen part, so the table is requested as version 1 and works with
 * any 1.x library. The slot order was transcribed from
 * include/onnxruntime/core/session/onnxruntime_c_api.h (ORT_API_VERSION 13)
 * and checked against a second, generated binding (onnxruntime-java's
 * OrtApi.java, jextract'ed from a recent header); the _Static_asserts below
 * pin each used slot's index, and copro_ort_open() checks at run time that
 * the slots behave as declared (see copro_ort_probe()) before anything else
 * is called.
 *
 * Everything here is static inline: the header is included by one test and
 * one benchmark, each its own program, and must not warn when a program
 * uses only part of it. Functions return 0 or a negative errno-style code
 * and put a one-line reason in err; they never exit().
 */
#ifndef COPRO_TESTS_ORT_DL_H
#define COPRO_TESTS_ORT_DL_H

#include <dlfcn.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/graph.h"

/* ---- the C API subset ------------------------------------------------------ */

/* Opaque handles; only pointers to them cross the API. */
typedef struct OrtEnv OrtEnv;
typedef struct OrtStatus OrtStatus;		/* NULL means success */
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtAllocator OrtAllocator;	/* only passed back to the library */

/*
 * Enum values from onnxruntime_c_api.h. The API's enums are passed as int:
 * on every ABI ONNX Runtime ships for, a C enum of these values is an int.
 * ONNXTensorElementDataType uses ONNX's TensorProto.DataType numbering, the
 * same as COPRO_K_*, so dtypes pass through unchanged.
 */
#define COPRO_ORT_LOGGING_LEVEL_WARNING	2	/* OrtLoggingLevel */
#define COPRO_ORT_INVALID_ARGUMENT	2	/* OrtErrorCode */
#define COPRO_ORT_SEQUENTIAL		0	/* ExecutionMode */
#define COPRO_ORT_ENABLE_ALL		99	/* GraphOptimizationLevel */
#define COPRO_ORT_ARENA_ALLOCATOR	1	/* OrtAllocatorType */
#define COPRO_ORT_MEM_TYPE_DEFAULT	0	/* OrtMemType */

/* The API version the table is requested as: slots 0..101 are version 1's. */
#define COPRO_ORT_API_VERSION		1

#define ORT_FN(ret, name, ...)	ret (*name)(__VA_ARGS__)
#define ORT_ST(name, ...)	OrtStatus *(*name)(__VA_ARGS__)
#define ORT_UNUSED(name)	void *name	/* a slot this file does not call */

/* struct OrtApi, slots 0..101 (API version 1), in the header's order. */
struct copro_ort_api {
	/* 0 */ ORT_FN(OrtStatus *, CreateStatus, int code, const char *msg);
	/* 1 */ ORT_FN(int, GetErrorCode, const OrtStatus *status);
	/* 2 */ ORT_FN(const char *, GetErrorMessage, const OrtStatus *status);
	/* 3 */ ORT_ST(CreateEnv, int log_severity_level, const char *logid, OrtEnv **out);
	/* 4 */ ORT_UNUSED(CreateEnvWithCustomLogger);
	/* 5 */ ORT_UNUSED(EnableTelemetryEvents);
	/* 6 */ ORT_UNUSED(DisableTelemetryEvents);
	/* 7 */ ORT_ST(CreateSession, const OrtEnv *env, const char *model_path,
		       const OrtSessionOptions *options, OrtSession **out);
	/* 8 */ ORT_UNUSED(CreateSessionFromArray);
	/* 9 */ ORT_ST(Run, OrtSession *session, const OrtRunOptions *run_options,
		       const char *const *input_names, const OrtValue *const *inputs,
		       size_t input_len, const char *const *output_names,
		       size_t output_names_len, OrtValue **outputs);
	/* 10 */ ORT_ST(CreateSessionOptions, OrtSessionOptions **options);
	/* 11 */ ORT_UNUSED(SetOptimizedModelFilePath);
	/* 12 */ ORT_UNUSED(CloneSessionOptions);
	/* 13 */ ORT_ST(SetSessionExecutionMode, OrtSessionOptions *options, int execution_mode);
	/* 14 */ ORT_UNUSED(EnableProfiling);
	/* 15 */ ORT_UNUSED(DisableProfiling);
	/* 16 */ ORT_UNUSED(EnableMemPattern);
	/* 17 */ ORT_UNUSED(DisableMemPattern);
	/* 18 */ ORT_UNUSED(EnableCpuMemArena);
	/* 19 */ ORT_UNUSED(DisableCpuMemArena);
	/* 20 */ ORT_UNUSED(SetSessionLogId);
	/* 21 */ ORT_UNUSED(SetSessionLogVerbosityLevel);
	/* 22 */ ORT_UNUSED(SetSessionLogSeverityLevel);
	/* 23 */ ORT_ST(SetSessionGraphOptimizationLevel, OrtSessionOptions *options,
			int graph_optimization_level);
	/* 24 */ ORT_ST(SetIntraOpNumThreads, OrtSessionOptions *options, int intra_op_num_threads);
	/* 25 */ ORT_ST(SetInterOpNumThreads, OrtSessionOptions *options, int inter_op_num_threads);
	/* 26 */ ORT_UNUSED(CreateCustomOpDomain);
	/* 27 */ ORT_UNUSED(CustomOpDomain_Add);
	/* 28 */ ORT_UNUSED(AddCustomOpDomain);
	/* 29 */ ORT_UNUSED(RegisterCustomOpsLibrary);
	/* 30 */ ORT_ST(SessionGetInputCount, const OrtSession *session, size_t *out);
	/* 31 */ ORT_ST(SessionGetOutputCount, const OrtSession *session, size_t *out);
	/* 32 */ ORT_UNUSED(SessionGetOverridableInitializerCount);
	/* 33 */ ORT_UNUSED(SessionGetInputTypeInfo);
	/* 34 */ ORT_UNUSED(SessionGetOutputTypeInfo);
	/* 35 */ ORT_UNUSED(SessionGetOverridableInitializerTypeInfo);
	/* 36 */ ORT_ST(SessionGetInputName, const OrtSession *session, size_t index,
			OrtAllocator *allocator, char **value);
	/* 37 */ ORT_ST(SessionGetOutputName, const OrtSession *session, size_t index,
			OrtAllocator *allocator, char **value);
	/* 38 */ ORT_UNUSED(SessionGetOverridableInitializerName);
	/* 39 */ ORT_ST(CreateRunOptions, OrtRunOptions **out);
	/* 40 */ ORT_UNUSED(RunOptionsSetRunLogVerbosityLevel);
	/* 41 */ ORT_UNUSED(RunOptionsSetRunLogSeverityLevel);
	/* 42 */ ORT_ST(RunOptionsSetRunTag, OrtRunOptions *options, const char *run_tag);
	/* 43 */ ORT_UNUSED(RunOptionsGetRunLogVerbosityLevel);
	/* 44 */ ORT_UNUSED(RunOptionsGetRunLogSeverityLevel);
	/* 45 */ ORT_ST(RunOptionsGetRunTag, const OrtRunOptions *options, const char **run_tag);
	/* 46 */ ORT_UNUSED(RunOptionsSetTerminate);
	/* 47 */ ORT_UNUSED(RunOptionsUnsetTerminate);
	/* 48 */ ORT_UNUSED(CreateTensorAsOrtValue);
	/* 49 */ ORT_ST(CreateTensorWithDataAsOrtValue, const OrtMemoryInfo *info, void *p_data,
			size_t p_data_len, const int64_t *shape, size_t shape_len, int type,
			OrtValue **out);
	/* 50 */ ORT_UNUSED(IsTensor);
	/* 51 */ ORT_ST(GetTensorMutableData, OrtValue *value, void **out);
	/* 52 */ ORT_UNUSED(FillStringTensor);
	/* 53 */ ORT_UNUSED(GetStringTensorDataLength);
	/* 54 */ ORT_UNUSED(GetStringTensorContent);
	/* 55 */ ORT_UNUSED(CastTypeInfoToTensorInfo);
	/* 56 */ ORT_UNUSED(GetOnnxTypeFromTypeInfo);
	/* 57 */ ORT_UNUSED(CreateTensorTypeAndShapeInfo);
	/* 58 */ ORT_UNUSED(SetTensorElementType);
	/* 59 */ ORT_UNUSED(SetDimensions);
	/* 60 */ ORT_ST(GetTensorElementType, const OrtTensorTypeAndShapeInfo *info, int *out);
	/* 61 */ ORT_ST(GetDimensionsCount, const OrtTensorTypeAndShapeInfo *info, size_t *out);
	/* 62 */ ORT_ST(GetDimensions, const OrtTensorTypeAndShapeInfo *info, int64_t *dim_values,
			size_t dim_values_length);
	/* 63 */ ORT_UNUSED(GetSymbolicDimensions);
	/* 64 */ ORT_ST(GetTensorShapeElementCount, const OrtTensorTypeAndShapeInfo *info,
			size_t *out);
	/* 65 */ ORT_ST(GetTensorTypeAndShape, const OrtValue *value,
			OrtTensorTypeAndShapeInfo **out);
	/* 66 */ ORT_UNUSED(GetTypeInfo);
	/* 67 */ ORT_UNUSED(GetValueType);
	/* 68 */ ORT_UNUSED(CreateMemoryInfo);
	/* 69 */ ORT_ST(CreateCpuMemoryInfo, int allocator_type, int mem_type, OrtMemoryInfo **out);
	/* 70 */ ORT_UNUSED(CompareMemoryInfo);
	/* 71 */ ORT_ST(MemoryInfoGetName, const OrtMemoryInfo *ptr, const char **out);
	/* 72 */ ORT_ST(MemoryInfoGetId, const OrtMemoryInfo *ptr, int *out);
	/* 73 */ ORT_ST(MemoryInfoGetMemType, const OrtMemoryInfo *ptr, int *out);
	/* 74 */ ORT_ST(MemoryInfoGetType, const OrtMemoryInfo *ptr, int *out);
	/* 75 */ ORT_ST(AllocatorAlloc, OrtAllocator *allocator, size_t size, void **out);
	/* 76 */ ORT_ST(AllocatorFree, OrtAllocator *allocator, void *p);
	/* 77 */ ORT_UNUSED(AllocatorGetInfo);
	/* 78 */ ORT_ST(GetAllocatorWithDefaultOptions, OrtAllocator **out);
	/* 79 */ ORT_UNUSED(AddFreeDimensionOverride);
	/* 80 */ ORT_UNUSED(GetValue);
	/* 81 */ ORT_UNUSED(GetValueCount);
	/* 82 */ ORT_UNUSED(CreateValue);
	/* 83 */ ORT_UNUSED(CreateOpaqueValue);
	/* 84 */ ORT_UNUSED(GetOpaqueValue);
	/* 85 */ ORT_UNUSED(KernelInfoGetAttribute_float);
	/* 86 */ ORT_UNUSED(KernelInfoGetAttribute_int64);
	/* 87 */ ORT_UNUSED(KernelInfoGetAttribute_string);
	/* 88 */ ORT_UNUSED(KernelContext_GetInputCount);
	/* 89 */ ORT_UNUSED(KernelContext_GetOutputCount);
	/* 90 */ ORT_UNUSED(KernelContext_GetInput);
	/* 91 */ ORT_UNUSED(KernelContext_GetOutput);
	/* 92 */ ORT_FN(void, ReleaseEnv, OrtEnv *input);
	/* 93 */ ORT_FN(void, ReleaseStatus, OrtStatus *input);
	/* 94 */ ORT_FN(void, ReleaseMemoryInfo, OrtMemoryInfo *input);
	/* 95 */ ORT_FN(void, ReleaseSession, OrtSession *input);
	/* 96 */ ORT_FN(void, ReleaseValue, OrtValue *input);
	/* 97 */ ORT_FN(void, ReleaseRunOptions, OrtRunOptions *input);
	/* 98 */ ORT_UNUSED(ReleaseTypeInfo);
	/* 99 */ ORT_FN(void, ReleaseTensorTypeAndShapeInfo, OrtTensorTypeAndShapeInfo *input);
	/* 100 */ ORT_FN(void, ReleaseSessionOptions, OrtSessionOptions *input);
	/* 101 */ ORT_UNUSED(ReleaseCustomOpDomain);
	/* later versions append here; nothing after slot 101 is read */
};

/* struct OrtApiBase: what OrtGetApiBase() returns. */
struct copro_ort_api_base {
	const struct copro_ort_api *(*GetApi)(uint32_t version);
	const char *(*GetVersionString)(void);
};

#undef ORT_FN
#undef ORT_ST
#undef ORT_UNUSED

/* Each slot called, at the index the header gives it. */
#define COPRO_ORT_SLOT(m, i)                                                               \
	_Static_assert(offsetof(struct copro_ort_api, m) == (i) * sizeof(void *), #m " slot")
COPRO_ORT_SLOT(CreateStatus, 0);
COPRO_ORT_SLOT(GetErrorCode, 1);
COPRO_ORT_SLOT(GetErrorMessage, 2);
COPRO_ORT_SLOT(CreateEnv, 3);
COPRO_ORT_SLOT(CreateSession, 7);
COPRO_ORT_SLOT(Run, 9);
COPRO_ORT_SLOT(CreateSessionOptions, 10);
COPRO_ORT_SLOT(SetSessionExecutionMode, 13);
COPRO_ORT_SLOT(SetSessionGraphOptimizationLevel, 23);
COPRO_ORT_SLOT(SetIntraOpNumThreads, 24);
COPRO_ORT_SLOT(SetInterOpNumThreads, 25);
COPRO_ORT_SLOT(SessionGetInputCount, 30);
COPRO_ORT_SLOT(SessionGetOutputCount, 31);
COPRO_ORT_SLOT(SessionGetInputName, 36);
COPRO_ORT_SLOT(SessionGetOutputName, 37);
COPRO_ORT_SLOT(CreateRunOptions, 39);
COPRO_ORT_SLOT(RunOptionsSetRunTag, 42);
COPRO_ORT_SLOT(RunOptionsGetRunTag, 45);
COPRO_ORT_SLOT(CreateTensorWithDataAsOrtValue, 49);
COPRO_ORT_SLOT(GetTensorMutableData, 51);
COPRO_ORT_SLOT(GetTensorElementType, 60);
COPRO_ORT_SLOT(GetDimensionsCount, 61);
COPRO_ORT_SLOT(GetDimensions, 62);
COPRO_ORT_SLOT(GetTensorShapeElementCount, 64);
COPRO_ORT_SLOT(GetTensorTypeAndShape, 65);
COPRO_ORT_SLOT(CreateCpuMemoryInfo, 69);
COPRO_ORT_SLOT(MemoryInfoGetName, 71);
COPRO_ORT_SLOT(MemoryInfoGetId, 72);
COPRO_ORT_SLOT(MemoryInfoGetMemType, 73);
COPRO_ORT_SLOT(MemoryInfoGetType, 74);
COPRO_ORT_SLOT(AllocatorAlloc, 75);
COPRO_ORT_SLOT(AllocatorFree, 76);
COPRO_ORT_SLOT(GetAllocatorWithDefaultOptions, 78);
COPRO_ORT_SLOT(ReleaseEnv, 92);
COPRO_ORT_SLOT(ReleaseStatus, 93);
COPRO_ORT_SLOT(ReleaseMemoryInfo, 94);
COPRO_ORT_SLOT(ReleaseSession, 95);
COPRO_ORT_SLOT(ReleaseValue, 96);
COPRO_ORT_SLOT(ReleaseRunOptions, 97);
COPRO_ORT_SLOT(ReleaseTensorTypeAndShapeInfo, 99);
COPRO_ORT_SLOT(ReleaseSessionOptions, 100);
COPRO_ORT_SLOT(ReleaseCustomOpDomain, 101);	/* ONNX Runtime's own version-1 anchor */
#undef COPRO_ORT_SLOT

/* ---- the library ------------------------------------------------------------- */

#define COPRO_ORT_MAX_IO	16

/* An opened libonnxruntime: one per process, from copro_ort_open() to copro_ort_close(). */
struct copro_ort {
	void *dl;				/* dlopen() handle */
	const struct copro_ort_api *api;
	OrtEnv *env;
	OrtMemoryInfo *cpu;			/* for tensors over the caller's buffers */
	char path[512];				/* the library opened */
	char version[32];			/* GetVersionString(), e.g. "1.30.0" */
	char pkg_version[32];			/* package.json's "version", "" if none found */
};

/* A model loaded into ONNX Runtime, configured like copro's plan: one thread. */
struct copro_ort_session {
	struct copro_ort *ort;
	OrtSession *sess;
	int n_in, n_out;
	char *in_names[COPRO_ORT_MAX_IO];	/* as the session lists them (strdup'ed) */
	char *out_names[COPRO_ORT_MAX_IO];
};

/*
 * Inputs and outputs bound once to caller buffers, so a timed loop calls
 * only Run: ONNX Runtime reads the inputs in place and writes the outputs
 * straight into the caller's buffers, as copro_plan_run() does.
 */
struct copro_ort_bound {
	struct copro_ort_session *s;
	int n_in, n_out;
	const char *in_names[COPRO_ORT_MAX_IO];
	const char *out_names[COPRO_ORT_MAX_IO];
	OrtValue *in[COPRO_ORT_MAX_IO];
	OrtValue *out[COPRO_ORT_MAX_IO];
};

/*
 * Turns a status into a return code: NULL (success) gives 0; anything else
 * copies its message into err (prefixed with what), frees it and gives -EIO.
 */
static inline int copro_ort_status(const struct copro_ort *o, OrtStatus *st, const char *what,
				   char *err, size_t errlen)
{
	if (!st)
		return 0;
	snprintf(err, errlen, "ONNX Runtime: %s: %s", what, o->api->GetErrorMessage(st));
	o->api->ReleaseStatus(st);
	return -EIO;
}

/*
 * Finds libonnxruntime.so: $COPRO_ORT_LIB if set (and then only there), else
 * the newest match of $BUILD/ort/node_modules/onnxruntime-node/bin/napi-v* /
 * linux/x64/libonnxruntime.so* with BUILD from the environment, else from
 * $COPRO_COPROD ($BUILD/bin/coprod, as tests/run.sh sets it), else "build".
 * Another build tree's install is deliberately not looked for: a sanitizer
 * build (build-san-*) must not pull an uninstrumented ONNX Runtime into its
 * runs unless asked to. Returns 0 with the path, or -ENOENT.
 */
static inline int copro_ort_find(char *path, size_t len, char *err, size_t errlen)
{
	const char *env = getenv("COPRO_ORT_LIB");
	const char *build = getenv("BUILD");
	char dir[PATH_MAX], pat[PATH_MAX + 128];
	glob_t gl;
	int ret = -ENOENT;

	if (env && *env) {
		snprintf(path, len, "%s", env);
		return 0;
	}
	if (build && *build) {
		snprintf(dir, sizeof(dir), "%s", build);
	} else if ((env = getenv("COPRO_COPROD")) && strstr(env, "/bin/")) {
		/* $BUILD/bin/coprod: cut at the last "/bin/". */
		const char *end = env, *p;

		while ((p = strstr(end, "/bin/")))
			end = p + 1;
		snprintf(dir, sizeof(dir), "%.*s", (int)(end - 1 - env), env);
	} else {
		snprintf(dir, sizeof(dir), "build");
	}
	snprintf(pat, sizeof(pat),
		 "%s/ort/node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime.so*",
		 dir);
	if (glob(pat, 0, NULL, &gl) == 0 && gl.gl_pathc > 0) {
		/* glob sorts: the last is the highest napi version, the longest soname. */
		snprintf(path, len, "%s", gl.gl_pathv[gl.gl_pathc - 1]);
		ret = 0;
	} else {
		snprintf(err, errlen,
			 "ONNX Runtime not found (no %.300s; `make ort BUILD=%.200s` installs it, "
			 "or set COPRO_ORT_LIB to a libonnxruntime.so)", pat, dir);
	}
	globfree(&gl);
	return ret;
}

/*
 * Reads "version" from the package.json of the npm package the library came
 * from (the package root, above bin/napi-vN/linux/x64/). Leaves out empty
 * when there is none, e.g. a library named by COPRO_ORT_LIB outside a package.
 */
static inline void copro_ort_pkg_version(const char *lib, char *out, size_t len)
{
	char p[PATH_MAX + 32], buf[4096];
	const char *v;
	char *slash;
	size_t n;
	FILE *f;
	int up;

	out[0] = '\0';
	snprintf(p, sizeof(p), "%s", lib);
	for (up = 0; up < 5; up++) {		/* the file, then x64, linux, napi-vN, bin */
		slash = strrchr(p, '/');
		if (!slash)
			return;
		*slash = '\0';
	}
	strcat(p, "/package.json");
	f = fopen(p, "r");
	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	v = strstr(buf, "\"version\"");
	if (!v || !(v = strchr(v + 9, '"')))
		return;
	v++;
	n = strcspn(v, "\"");
	if (n >= len)
		n = len - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/*
 * Checks that the table's slots are the functions declared above before the
 * session code relies on them, through calls whose results are known:
 *   0/1/2/93    a status made with a code and message gives both back
 *   69/71-74/94 a CPU memory info reports name "Cpu", id 0 and the types asked for
 *   39/42/45/97 a run tag set on run options reads back
 *   78/75/76    the default allocator hands out writable memory and takes it back
 * A wrong slot fails one of these (or crashes here, at load, not in a test).
 * Slots used only by sessions (7, 9, 10, 13, 23-25, 30-31, 36-37, 49, 51,
 * 60-65, 96, 99, 100) are checked by their use: input and output names and
 * counts, dtypes and shapes read back and compared by the callers.
 */
static inline int copro_ort_probe(struct copro_ort *o, char *err, size_t errlen)
{
	const struct copro_ort_api *a = o->api;
	static const char msg[] = "copro probe: status round trip";
	OrtMemoryInfo *mi = NULL;
	OrtRunOptions *ro = NULL;
	OrtAllocator *alloc = NULL;
	const char *s = NULL;
	OrtStatus *st;
	void *mem = NULL;
	int v = -1, ret;

	st = a->CreateStatus(COPRO_ORT_INVALID_ARGUMENT, msg);
	if (!st || a->GetErrorCode(st) != COPRO_ORT_INVALID_ARGUMENT ||
	    strcmp(a->GetErrorMessage(st), msg) != 0) {
		snprintf(err, errlen, "ONNX Runtime API table: status slots 0-2 do not round-trip");
		if (st)
			a->ReleaseStatus(st);
		return -EPROTO;
	}
	a->ReleaseStatus(st);

	ret = copro_ort_status(o, a->CreateCpuMemoryInfo(COPRO_ORT_ARENA_ALLOCATOR,
							  COPRO_ORT_MEM_TYPE_DEFAULT, &mi),
			       "CreateCpuMemoryInfo", err, errlen);
	if (ret)
		return ret;
	ret = -EPROTO;
	if (a->MemoryInfoGetName(mi, &s) || !s || strcmp(s, "Cpu") != 0)
		goto bad_mi;
	if (a->MemoryInfoGetId(mi, &v) || v != 0)
		goto bad_mi;
	if (a->MemoryInfoGetMemType(mi, &v) || v != COPRO_ORT_MEM_TYPE_DEFAULT)
		goto bad_mi;
	if (a->MemoryInfoGetType(mi, &v) || v != COPRO_ORT_ARENA_ALLOCATOR)
		goto bad_mi;
	a->ReleaseMemoryInfo(mi);

	ret = copro_ort_status(o, a->CreateRunOptions(&ro), "CreateRunOptions", err, errlen);
	if (ret)
		return ret;
	s = NULL;
	if (a->RunOptionsSetRunTag(ro, "copro-probe") || a->RunOptionsGetRunTag(ro, &s) || !s ||
	    strcmp(s, "copro-probe") != 0) {
		a->ReleaseRunOptions(ro);
		snprintf(err, errlen, "ONNX Runtime API table: run-tag slots 42/45 do not round-trip");
		return -EPROTO;
	}
	a->ReleaseRunOptions(ro);

	if (a->GetAllocatorWithDefaultOptions(&alloc) || !alloc ||
	    a->AllocatorAlloc(alloc, 64, &mem) || !mem) {
		snprintf(err, errlen, "ONNX Runtime API table: allocator slots 75/78 misbehave");
		return -EPROTO;
	}
	memset(mem, 0x5a, 64);
	if (a->AllocatorFree(alloc, mem)) {
		snprintf(err, errlen, "ONNX Runtime API table: AllocatorFree (slot 76) failed");
		return -EPROTO;
	}
	return 0;
bad_mi:
	a->ReleaseMemoryInfo(mi);
	snprintf(err, errlen, "ONNX Runtime API table: memory-info slots 69/71-74 misbehave");
	return ret;
}

/* Releases what copro_ort_open() set up; safe on a zeroed or half-opened o. */
static inline void copro_ort_close(struct copro_ort *o)
{
	if (o->api) {
		if (o->cpu)
			o->api->ReleaseMemoryInfo(o->cpu);
		if (o->env)
			o->api->ReleaseEnv(o->env);
	}
	/*
	 * The library stays mapped: ONNX Runtime keeps process-wide state
	 * (logging, thread-local caches) that it tears down in its own
	 * destructors at exit, after which dlclose() is not needed.
	 */
	memset(o, 0, sizeof(*o));
}

/*
 * Opens ONNX Runtime (see copro_ort_find), checks the table, and creates the
 * environment. Returns 0; -ENOENT when no library is installed (callers
 * skip); -ELIBBAD when the file is not a loadable ONNX Runtime; -EPROTO when
 * its version disagrees with its package.json or a probe fails; -EIO for an
 * error ONNX Runtime reports. On failure o is left closed.
 */
static inline int copro_ort_open(struct copro_ort *o, char *err, size_t errlen)
{
	const struct copro_ort_api_base *(*get_base)(void);
	const struct copro_ort_api_base *base;
	const char *ver;
	int ret;

	memset(o, 0, sizeof(*o));
	ret = copro_ort_find(o->path, sizeof(o->path), err, errlen);
	if (ret)
		return ret;
	/* RTLD_LOCAL: its C++ runtime symbols stay out of the program's namespace. */
	o->dl = dlopen(o->path, RTLD_NOW | RTLD_LOCAL);
	if (!o->dl) {
		snprintf(err, errlen, "dlopen %.300s: %.400s", o->path, dlerror());
		return -ELIBBAD;
	}
	*(void **)&get_base = dlsym(o->dl, "OrtGetApiBase");
	if (!get_base || !(base = get_base())) {
		snprintf(err, errlen, "%.400s: no OrtGetApiBase", o->path);
		ret = -ELIBBAD;
		goto fail;
	}
	ver = base->GetVersionString();
	snprintf(o->version, sizeof(o->version), "%s", ver ? ver : "");
	copro_ort_pkg_version(o->path, o->pkg_version, sizeof(o->pkg_version));
	if (strncmp(o->version, "1.", 2) != 0 ||
	    (o->pkg_version[0] && strcmp(o->version, o->pkg_version) != 0)) {
		snprintf(err, errlen, "%.400s: version \"%s\", its package.json says \"%s\"", o->path,
			 o->version, o->pkg_version);
		ret = -EPROTO;
		goto fail;
	}
	o->api = base->GetApi(COPRO_ORT_API_VERSION);
	if (!o->api) {
		snprintf(err, errlen, "%.400s: GetApi(%d) refused", o->path, COPRO_ORT_API_VERSION);
		ret = -EPROTO;
		goto fail;
	}
	ret = copro_ort_probe(o, err, errlen);
	if (ret)
		goto fail;
	ret = copro_ort_status(o, o->api->CreateEnv(COPRO_ORT_LOGGING_LEVEL_WARNING, "copro",
						    &o->env), "CreateEnv", err, errlen);
	if (ret)
		goto fail;
	ret = copro_ort_status(o, o->api->CreateCpuMemoryInfo(COPRO_ORT_ARENA_ALLOCATOR,
							       COPRO_ORT_MEM_TYPE_DEFAULT, &o->cpu),
			       "CreateCpuMemoryInfo", err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	copro_ort_close(o);
	return ret;
}

/* ---- sessions -------------------------------------------------------------- */

static inline void copro_ort_session_close(struct copro_ort_session *s)
{
	int i;

	if (s->sess)
		s->ort->api->ReleaseSession(s->sess);
	for (i = 0; i < COPRO_ORT_MAX_IO; i++) {
		free(s->in_names[i]);
		free(s->out_names[i]);
	}
	memset(s, 0, sizeof(*s));
}

/* Copies the session's name for input (out = 0) or output (out = 1) i. */
static inline int copro_ort_name(struct copro_ort_session *s, int out, size_t i, char **dst,
				 char *err, size_t errlen)
{
	const struct copro_ort_api *a = s->ort->api;
	OrtAllocator *alloc;
	char *name = NULL;
	int ret;

	ret = copro_ort_status(s->ort, a->GetAllocatorWithDefaultOptions(&alloc),
			       "GetAllocatorWithDefaultOptions", err, errlen);
	if (ret)
		return ret;
	ret = copro_ort_status(s->ort, out ? a->SessionGetOutputName(s->sess, i, alloc, &name)
					   : a->SessionGetInputName(s->sess, i, alloc, &name),
			       "SessionGet{In,Out}putName", err, errlen);
	if (ret)
		return ret;
	*dst = strdup(name);
	(void)copro_ort_status(s->ort, a->AllocatorFree(alloc, name), "AllocatorFree", err,
			       errlen);
	return *dst ? 0 : -ENOMEM;
}

/*
 * Loads model into a session with the options that make the comparison with
 * copro's plan fair: one intra-op thread (copro runs its GEMMs on one
 * OpenBLAS thread), sequential execution and one inter-op thread (no thread
 * pool at all), and every graph optimization ONNX Runtime has (what a user
 * gets by default). Fills in the session's input and output names. Returns 0
 * or a negative code with the reason in err.
 */
static inline int copro_ort_session_open(struct copro_ort *o, const char *model,
					 struct copro_ort_session *s, char *err, size_t errlen)
{
	const struct copro_ort_api *a = o->api;
	OrtSessionOptions *so = NULL;
	size_t n_in = 0, n_out = 0, i;
	int ret;

	memset(s, 0, sizeof(*s));
	s->ort = o;
	ret = copro_ort_status(o, a->CreateSessionOptions(&so), "CreateSessionOptions", err,
			       errlen);
	if (ret)
		return ret;
	ret = copro_ort_status(o, a->SetIntraOpNumThreads(so, 1), "SetIntraOpNumThreads", err,
			       errlen);
	if (!ret)
		ret = copro_ort_status(o, a->SetInterOpNumThreads(so, 1), "SetInterOpNumThreads",
				       err, errlen);
	if (!ret)
		ret = copro_ort_status(o, a->SetSessionExecutionMode(so, COPRO_ORT_SEQUENTIAL),
				       "SetSessionExecutionMode", err, errlen);
	if (!ret)
		ret = copro_ort_status(o, a->SetSessionGraphOptimizationLevel(
						  so, COPRO_ORT_ENABLE_ALL),
				       "SetSessionGraphOptimizationLevel", err, errlen);
	if (!ret)
		ret = copro_ort_status(o, a->CreateSession(o->env, model, so, &s->sess),
				       "CreateSession", err, errlen);
	a->ReleaseSessionOptions(so);
	if (ret)
		goto fail;
	ret = copro_ort_status(o, a->SessionGetInputCount(s->sess, &n_in), "SessionGetInputCount",
			       err, errlen);
	if (!ret)
		ret = copro_ort_status(o, a->SessionGetOutputCount(s->sess, &n_out),
				       "SessionGetOutputCount", err, errlen);
	if (ret)
		goto fail;
	if (n_in > COPRO_ORT_MAX_IO || n_out > COPRO_ORT_MAX_IO) {
		snprintf(err, errlen, "%.400s: %zu inputs, %zu outputs (at most %d each here)", model,
			 n_in, n_out, COPRO_ORT_MAX_IO);
		ret = -E2BIG;
		goto fail;
	}
	s->n_in = (int)n_in;
	s->n_out = (int)n_out;
	for (i = 0; i < n_in && !ret; i++)
		ret = copro_ort_name(s, 0, i, &s->in_names[i], err, errlen);
	for (i = 0; i < n_out && !ret; i++)
		ret = copro_ort_name(s, 1, i, &s->out_names[i], err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	copro_ort_session_close(s);
	return ret;
}

/* Wraps t's data (not copied; it must outlive the value) in a tensor OrtValue. */
static inline int copro_ort_value(struct copro_ort *o, const struct copro_kt *t, OrtValue **v,
				  char *err, size_t errlen)
{
	int64_t bytes = copro_kt_bytes(t);

	if (bytes < 0 || copro_k_dtype_size(t->dtype) == 0 || !t->data) {
		snprintf(err, errlen, "tensor of %s with unknown shape or no data",
			 copro_k_dtype_name(t->dtype));
		return -EINVAL;
	}
	return copro_ort_status(o, o->api->CreateTensorWithDataAsOrtValue(
					   o->cpu, t->data, (size_t)bytes, t->dims,
					   (size_t)t->rank, t->dtype, v),
				"CreateTensorWithDataAsOrtValue", err, errlen);
}

/*
 * Copies a tensor ONNX Runtime produced into out: dtype and shape, and data
 * in a fresh malloc'ed buffer (64-byte aligned) the caller frees.
 */
static inline int copro_ort_take(struct copro_ort *o, OrtValue *v, struct copro_kt *out,
				 char *err, size_t errlen)
{
	const struct copro_ort_api *a = o->api;
	OrtTensorTypeAndShapeInfo *info = NULL;
	size_t rank = 0, count = 0;
	void *src = NULL;
	int64_t bytes;
	int dtype = 0, ret;

	memset(out, 0, sizeof(*out));
	ret = copro_ort_status(o, a->GetTensorTypeAndShape(v, &info), "GetTensorTypeAndShape",
			       err, errlen);
	if (ret)
		return ret;
	ret = copro_ort_status(o, a->GetTensorElementType(info, &dtype), "GetTensorElementType",
			       err, errlen);
	if (!ret)
		ret = copro_ort_status(o, a->GetDimensionsCount(info, &rank), "GetDimensionsCount",
				       err, errlen);
	if (!ret && rank > COPRO_K_MAX_RANK) {
		snprintf(err, errlen, "output of rank %zu", rank);
		ret = -E2BIG;
	}
	if (!ret)
		ret = copro_ort_status(o, a->GetDimensions(info, out->dims, rank), "GetDimensions",
				       err, errlen);
	if (!ret)
		ret = copro_ort_status(o, a->GetTensorShapeElementCount(info, &count),
				       "GetTensorShapeElementCount", err, errlen);
	a->ReleaseTensorTypeAndShapeInfo(info);
	if (ret)
		return ret;
	out->dtype = dtype;
	out->rank = (int32_t)rank;
	bytes = copro_kt_bytes(out);
	/* Slots 60-64 check each other: the element count is the product of the dims. */
	if (copro_k_dtype_size(dtype) == 0 || bytes < 0 ||
	    (size_t)copro_kt_numel(out) != count) {
		snprintf(err, errlen, "output of type %d with %zu dims and %zu elements", dtype,
			 rank, count);
		return -EPROTO;
	}
	ret = copro_ort_status(o, a->GetTensorMutableData(v, &src), "GetTensorMutableData", err,
			       errlen);
	if (ret)
		return ret;
	out->data = aligned_alloc(64, ((size_t)bytes + 63) / 64 * 64 + 64);
	if (!out->data)
		return -ENOMEM;
	if (bytes)
		memcpy(out->data, src, (size_t)bytes);
	return 0;
}

/*
 * Runs the session once: in[i] is fed as in_names[i]; ONNX Runtime allocates
 * the outputs named out_names[0..n_out-1], which are copied into out[] (see
 * copro_ort_take; the caller frees each out[i].data). Returns 0 or a
 * negative code with the reason in err.
 */
static inline int copro_ort_run(struct copro_ort_session *s, const char *const *in_names,
				const struct copro_kt *in, int n_in, const char *const *out_names,
				struct copro_kt *out, int n_out, char *err, size_t errlen)
{
	struct copro_ort *o = s->ort;
	OrtValue *iv[COPRO_ORT_MAX_IO] = { 0 }, *ov[COPRO_ORT_MAX_IO] = { 0 };
	int i, ret = 0;

	if (n_in > COPRO_ORT_MAX_IO || n_out > COPRO_ORT_MAX_IO)
		return -E2BIG;
	for (i = 0; i < n_out; i++)
		memset(&out[i], 0, sizeof(out[i]));
	for (i = 0; i < n_in && !ret; i++)
		ret = copro_ort_value(o, &in[i], &iv[i], err, errlen);
	if (!ret)
		ret = copro_ort_status(o, o->api->Run(s->sess, NULL, in_names,
						      (const OrtValue *const *)iv, (size_t)n_in,
						      out_names, (size_t)n_out, ov),
				       "Run", err, errlen);
	for (i = 0; i < n_out && !ret; i++)
		ret = copro_ort_take(o, ov[i], &out[i], err, errlen);
	for (i = 0; i < COPRO_ORT_MAX_IO; i++) {
		if (iv[i])
			o->api->ReleaseValue(iv[i]);
		if (ov[i])
			o->api->ReleaseValue(ov[i]);
	}
	if (ret) {
		for (i = 0; i < n_out; i++) {
			free(out[i].data);
			out[i].data = NULL;
		}
	}
	return ret;
}

static inline void copro_ort_unbind(struct copro_ort_bound *b)
{
	int i;

	for (i = 0; i < COPRO_ORT_MAX_IO && b->s; i++) {
		if (b->in[i])
			b->s->ort->api->ReleaseValue(b->in[i]);
		if (b->out[i])
			b->s->ort->api->ReleaseValue(b->out[i]);
	}
	memset(b, 0, sizeof(*b));
}

/*
 * Binds in[] and out[] (data and full shapes set; the names and buffers must
 * outlive the binding) for copro_ort_run_bound(). Returns 0 or a negative
 * code with the reason in err.
 */
static inline int copro_ort_bind(struct copro_ort_session *s, const char *const *in_names,
				 const struct copro_kt *in, int n_in, const char *const *out_names,
				 const struct copro_kt *out, int n_out, struct copro_ort_bound *b,
				 char *err, size_t errlen)
{
	int i, ret = 0;

	memset(b, 0, sizeof(*b));
	if (n_in > COPRO_ORT_MAX_IO || n_out > COPRO_ORT_MAX_IO)
		return -E2BIG;
	b->s = s;
	b->n_in = n_in;
	b->n_out = n_out;
	for (i = 0; i < n_in && !ret; i++) {
		b->in_names[i] = in_names[i];
		ret = copro_ort_value(s->ort, &in[i], &b->in[i], err, errlen);
	}
	for (i = 0; i < n_out && !ret; i++) {
		b->out_names[i] = out_names[i];
		ret = copro_ort_value(s->ort, &out[i], &b->out[i], err, errlen);
	}
	if (ret)
		copro_ort_unbind(b);
	return ret;
}

/* One Run over a binding: the call a timed loop makes. Returns 0 or -EIO. */
static inline int copro_ort_run_bound(struct copro_ort_bound *b, char *err, size_t errlen)
{
	const struct copro_ort_api *a = b->s->ort->api;

	return copro_ort_status(b->s->ort,
				a->Run(b->s->sess, NULL, b->in_names,
				       (const OrtValue *const *)b->in, (size_t)b->n_in,
				       b->out_names, (size_t)b->n_out, b->out),
				"Run", err, errlen);
}

#endif /* COPRO_TESTS_ORT_DL_H */
