# copro - top-level Makefile. `make` builds everything, `make test` runs
# every test, `make bench` prints the benchmark tables, `make demo` runs the
# demo. V=1 shows commands; SANITIZE=address,undefined or SANITIZE=thread
# builds an instrumented tree under build-san-*/.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=
WERROR ?= 0

ifneq ($(SANITIZE),)
BUILD ?= build-san-$(subst $(comma),-,$(SANITIZE))
override CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
# TSan does not model fences; the sleep protocol's fence pairs across
# processes, which TSan cannot see anyway.
ifneq ($(findstring thread,$(SANITIZE)),)
override CFLAGS += -Wno-tsan
endif
override LDFLAGS += -fsanitize=$(SANITIZE)
else
BUILD ?= build
endif
comma := ,

override CFLAGS += -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wno-unused-parameter -fPIC -pthread -MMD -MP -D_GNU_SOURCE \
	-Ishm -Iclient -Iserver -Ikernels -I$(BUILD)/gen
ifeq ($(WERROR),1)
override CFLAGS += -Werror
endif

URING_LIBS := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
INIH_LIBS := $(shell pkg-config --libs inih 2>/dev/null || echo -linih)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)
PROTOBUF_LIBS := $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
override CFLAGS += $(BLAS_CFLAGS)
ONNX_PROTO ?= /usr/include/onnx/onnx.proto

ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = @printf '  %-7s %s\n' $(1) $(2);
endif

SHM_SRC := $(wildcard shm/*.c)
CLIENT_SRC := $(wildcard client/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
KERNEL_SRC := $(wildcard kernels/*.c kernels/cpu/*.c kernels/onnx/*.c kernels/llm/*.c)
GEN_SRC := $(BUILD)/gen/onnx.pb-c.c
TOOL_SRC := $(wildcard tools/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC := $(wildcard bench/*.c)
HELPER_SRC := $(wildcard tests/helpers/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOPRO_A := $(BUILD)/lib/libcopro.a
LIBCOPRO_SO := $(BUILD)/lib/libcopro.so.1
LIBCOPROD_A := $(BUILD)/lib/libcoprod.a
LIBCOPROK_A := $(BUILD)/lib/libcoprok.a
COPROD := $(BUILD)/bin/coprod
TOOLS := $(patsubst tools/%.c,$(BUILD)/bin/%,$(TOOL_SRC))
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
HELPERS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/%,$(HELPER_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

# ---- CUDA (optional) ---------------------------------------------------------
#
# Where nvcc is found (on PATH, else /usr/local/cuda/bin), the .cu files of
# kernels/cuda/ build into libcoprok and everything that links it gets
# cudart and cuBLAS; CUDA=0, or no nvcc, builds the stub
# kernels/cuda/cuda_none.c instead (same API, no devices), and the build is
# otherwise the CPU one. NVCC=/path/to/nvcc picks a compiler. The C sources
# that want to know get -DCOPRO_HAVE_CUDA=1 through CUDA_CFLAGS.
CUDA ?= 1
ifeq ($(CUDA),0)
override NVCC :=
else ifeq ($(origin NVCC),undefined)
NVCC := $(shell command -v nvcc 2>/dev/null || \
	{ test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
endif
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(NVCC)))
CUDA_SRC := $(wildcard kernels/cuda/*.cu)
CUDA_STUB :=
# sm_80 (A100) and sm_90 (H100/H200) binaries, and sm_90 PTX that newer GPUs JIT.
NVCC_GENCODE ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80 \
	-gencode arch=compute_90,code=compute_90
NVCC_FLAGS ?= -O3
override NVCC_FLAGS += --std=c++17 $(NVCC_GENCODE) -Xcompiler -fPIC,-Wall -Ishm -Iclient -Ikernels
CUDA_CFLAGS := -DCOPRO_HAVE_CUDA=1
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
else
CUDA_SRC :=
CUDA_STUB := kernels/cuda/cuda_none.c
CUDA_CFLAGS :=
CUDA_LIBS :=
endif
CUDA_OBJ := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CUDA_SRC))
KERNEL_SRC += $(CUDA_STUB)

CLIENT_LIBS := $(URING_LIBS) -lpthread
KERNEL_LIBS := $(PROTOBUF_LIBS) $(BLAS_LIBS) -lm
ifneq ($(NVCC),)
KERNEL_LIBS += $(CUDA_LIBS)
endif
XXHASH_LIBS := $(shell pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash)
NUMA_LIBS := $(shell pkg-config --libs numa 2>/dev/null || echo -lnuma)
SERVER_LIBS := $(URING_LIBS) $(INIH_LIBS) $(XXHASH_LIBS) $(NUMA_LIBS) $(KERNEL_LIBS) -lpthread

all: $(LIBCOPRO_A) $(LIBCOPRO_SO) $(LIBCOPROK_A) $(COPROD) $(TOOLS) $(BUILD)/copro.pc
build-tests: all $(TESTS) $(HELPERS)
build-bench: all $(BENCHES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -c $< -o $@

$(LIBCOPRO_A): $(call obj,$(CLIENT_SRC) $(SHM_SRC))
	@mkdir -p $(dir $@)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(LIBCOPRO_SO): $(call obj,$(CLIENT_SRC) $(SHM_SRC)) client/libcopro.map
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS) -shared -Wl,-soname,libcopro.so.1 \
		-Wl,--version-script=client/libcopro.map -o $@ \
		$(call obj,$(CLIENT_SRC) $(SHM_SRC)) $(LDFLAGS) $(CLIENT_LIBS)
	@ln -sf libcopro.so.1 $(BUILD)/lib/libcopro.so

$(LIBCOPROD_A): $(call obj,$(SERVER_SRC) $(SHM_SRC))
	@mkdir -p $(dir $@)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

# The ONNX schema comes from Debian's libonnx-dev and is compiled at build
# time; it is never copied into the repository.
$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen
	$(call say,PROTOC,$<)protoc-c --c_out=$(BUILD)/gen -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

$(BUILD)/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	$(call say,CC,$<)$(CC) $(filter-out -Werror -Wall -Wextra -Wshadow -Wstrict-prototypes,$(CFLAGS)) -w -c $< -o $@

$(call obj,$(KERNEL_SRC)): $(BUILD)/gen/onnx.pb-c.h

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(call say,NVCC,$<)$(NVCC) $(NVCC_FLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

$(BUILD)/obj/tests/test_cuda.o: override CFLAGS += $(CUDA_CFLAGS)

# GCC 12 does not vectorize at -O2: the element-wise loops of the kernels
# ran 2-6x slower without this (Relu at batch 64: 13.6 us -> 2.3 us).
$(call obj,$(KERNEL_SRC)): override CFLAGS += -ftree-vectorize -fvect-cost-model=cheap

$(LIBCOPROK_A): $(call obj,$(KERNEL_SRC)) $(CUDA_OBJ) $(BUILD)/gen/onnx.pb-c.o
	@mkdir -p $(dir $@)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(COPROD): $(call obj,server/main.c) $(LIBCOPROD_A) $(LIBCOPROK_A)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(SERVER_LIBS)

# Tools link the client library; model tools also link the kernels.
$(BUILD)/bin/%: $(BUILD)/obj/tools/%.o $(LIBCOPRO_A) $(LIBCOPROK_A)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(CLIENT_LIBS) $(KERNEL_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIBCOPROD_A) $(LIBCOPROK_A) $(LIBCOPRO_A)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(CMOCKA_LIBS) $(SERVER_LIBS) -lm

$(BUILD)/tests/%: $(BUILD)/obj/tests/helpers/%.o $(LIBCOPRO_A)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(CLIENT_LIBS) -lm

# Benchmarks link the daemon's library too (bench/llm drives the scheduler in process).
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBCOPRO_A) $(LIBCOPROD_A) $(LIBCOPROK_A)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(SERVER_LIBS)

$(BUILD)/copro.pc: client/copro.pc.in
	@mkdir -p $(dir $@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' $< > $@

# ---- packages --------------------------------------------------------------

DEB_PKGS := build-essential pkg-config liburing-dev libnuma-dev libopenblas-dev \
	libcmocka-dev libinih-dev groff-base libprotobuf-c-dev protobuf-c-compiler \
	libonnx-dev libonnx-testdata libxxhash-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# ---- tests, bench, demo ----------------------------------------------------

test: deps
	$(Q)$(MAKE) --no-print-directory build-tests
	$(Q)BUILD=$(BUILD) tests/run.sh

check: build-tests
	$(Q)BUILD=$(BUILD) tests/run.sh

# The GPU tests alone (tests/test_cuda*.c): on a machine without a GPU, or
# in a build without CUDA, they report their device tests as skipped.
GPU_TESTS := $(filter $(BUILD)/tests/test_cuda%,$(TESTS))

test-gpu:
	$(Q)$(MAKE) --no-print-directory $(GPU_TESTS)
	$(Q)BUILD=$(BUILD) COPRO_TESTS='test_cuda*' tests/run.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory build-bench
	$(Q)BUILD=$(BUILD) bench/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) tools/demo.sh

man-lint:
	$(Q)for m in man/*.[1-8]; do \
		if head -1 $$m | grep -q '^\.so '; then \
			t=man/$$(basename "$$(head -1 $$m | cut -d' ' -f2)"); \
			[ -f "$$t" ] || { echo "$$m: .so target $$t missing"; exit 1; }; \
			continue; \
		fi; \
		out=$$(groff -man -ww -z $$m 2>&1); \
		[ -z "$$out" ] || { echo "$$m: $$out"; exit 1; }; \
	done; echo "man pages: clean"

format:
	clang-format -i $(wildcard shm/*.[ch] client/*.[ch] server/*.[ch] kernels/*.[ch] \
		kernels/*/*.[ch] tools/*.c tests/*.c bench/*.c)

# ---- install ---------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7 \
		$(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(COPROD) $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBCOPRO_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBCOPRO_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcopro.so.1 $(DESTDIR)$(PREFIX)/lib/libcopro.so
	install -m 644 client/copro.h shm/copro_abi.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/copro.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	for s in 1 3 5 7 8; do \
		ls man/*.$$s >/dev/null 2>&1 && install -m 644 man/*.$$s $(DESTDIR)$(PREFIX)/share/man/man$$s/; \
	done; true

clean:
	rm -rf build build-san-*

# ---- fuzzing (its own target: minutes, not part of `make test`) ----------------

FUZZ_TIME ?= 180
FUZZ_DIR := $(BUILD)/fuzz

fuzz: deps all
	@mkdir -p $(FUZZ_DIR)/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-std=gnu11 -D_GNU_SOURCE -DCOPRO_PLAN_MAX_BYTES='((int64_t)256<<20)' \
		-Ikernels -I$(BUILD)/gen $(BLAS_CFLAGS) tests/fuzz/fuzz_onnx_loader.c \
		$(KERNEL_SRC) $(BUILD)/gen/onnx.pb-c.c $(KERNEL_LIBS) -o $(FUZZ_DIR)/fuzz_onnx_loader
	@for d in /usr/share/libonnx-testdata/data/node/test_*; do \
		cp "$$d/model.onnx" "$(FUZZ_DIR)/corpus/$${d##*node/}.onnx"; done
	OPENBLAS_NUM_THREADS=1 $(FUZZ_DIR)/fuzz_onnx_loader -max_total_time=$(FUZZ_TIME) \
		-max_len=65536 -timeout=10 -rss_limit_mb=4096 \
		-artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/corpus

.PHONY: all build-tests build-bench deps test check test-gpu bench demo man-lint format install clean fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Keep intermediate objects (tests and tools are built through pattern chains).
.SECONDARY:

# ---- ONNX Runtime: optional baseline and second reference (`make ort`) -------
#
# Installs ONNX Runtime's CPU build from the npm registry under $(BUILD)/ort:
# the onnxruntime-node package ships libonnxruntime.so (beside a Node binding
# nothing here uses); --ignore-scripts skips its install script, which only
# tries to download GPU extras. Nothing links it: tests/test_ort_reference and
# bench/onnx_mlp dlopen it from $(BUILD)/ort/node_modules/onnxruntime-node/
# bin/napi-v*/linux/x64/ (or from $COPRO_ORT_LIB) and skip when it is absent,
# so neither `make deps` nor `make test` needs it or installs it. Needs npm;
# ORT_VERSION=1.30.0 pins a version (the default takes npm's latest).
ORT_DIR := $(BUILD)/ort
ORT_VERSION ?=
ORT_LIB_GLOB := $(ORT_DIR)/node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime.so*

ort:
	$(Q)if ls $(ORT_LIB_GLOB) >/dev/null 2>&1; then \
		echo "ort: already installed under $(ORT_DIR) (remove $(ORT_DIR) to reinstall)"; \
	else \
		command -v npm >/dev/null || { echo "ort: npm not found (apt-get install npm)" >&2; exit 1; }; \
		mkdir -p $(ORT_DIR) && \
		npm install --ignore-scripts --no-audit --no-fund --prefix $(ORT_DIR) \
			onnxruntime-node$(if $(ORT_VERSION),@$(ORT_VERSION)) || exit 1; \
	fi; \
	ls $(ORT_LIB_GLOB)

.PHONY: ort
