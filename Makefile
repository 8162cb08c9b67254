# The user's entry points. Every target sets up (fast when done) and builds what it needs.
#
#   make four-clients     local demo: a time server and RAW/EWMA/Kalman/PID clients, table
#   make test             set up, build, run every test (ctest)
#   make udp-server       a time server on 127.0.0.1:$(PORT) in the foreground
#   make three-clients    EWMA, Kalman, PID, 50 probes each, in parallel ($(SERVER) if set)
#   make bench            the benchmarks (figures printed, nothing asserted)

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
PORT ?= 12345
# A running time server for the client targets (HOST:PORT); empty: start one in-process.
SERVER ?=
# Extra flags for labnet's clients, e.g. ARGS="--output json" or ARGS="--alpha 0.2".
ARGS ?=

LABNET := $(BUILD_DIR)/labnet/labnet
DEMO_FLAGS := --interval 5ms --offset 25ms --drift-ppm 80

.PHONY: all setup configure build test four-clients three-clients udp-server demo bench \
        format clean

all: build

setup:
	@scripts/setup

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: setup $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j2

# Clients for each listed scheme, against $(SERVER) or a server started in-process.
define run_clients
	@if [ -n "$(SERVER)" ]; then \
	  $(LABNET) ts-client --server $(SERVER) --mode $(1) --count $(2) $(DEMO_FLAGS) $(ARGS); \
	else \
	  $(LABNET) ts-demo --clients $(1) --count $(2) $(DEMO_FLAGS) $(ARGS); \
	fi
endef

four-clients: build
	$(call run_clients,raw$(,)ewma$(,)kalman$(,)pid,500)

three-clients: build
	$(call run_clients,ewma$(,)kalman$(,)pid,50)

demo: four-clients

udp-server: build
	$(LABNET) ts-server --port $(PORT) $(ARGS)

bench: build
	bench/run

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD_DIR)

, := ,
