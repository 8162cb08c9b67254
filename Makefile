# The user's entry points. Every target sets up (fast when done) and builds what it needs.
#
#   make demo             local lab (controller + 4 agents + dashboard) up, four-scheme run, table
#   make test             set up, build, run every test (ctest)
#   make four-clients     RAW/EWMA/Kalman/PID through the controller ($(SERVER) if set: direct)
#   make three-clients    EWMA, Kalman, PID, 50 probes each ($(SERVER) if set: direct)
#   make udp-server       a time server on 127.0.0.1:$(PORT) in the foreground
#   make tcp-server       a TCP echo server on 127.0.0.1:$(TCP_PORT) (ARGS="--mode sink" ...)
#   make tcp-demo / udp-demo   TCP (rr, then bulk) / UDP traffic runs through the controller
#   make local-demo       the four schemes with no controller (labnet ts-demo)
#   make lab-up / lab-status / lab-down
#   make bench            the benchmarks (figures printed, nothing asserted)

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
PORT ?= 12345
TCP_PORT ?= 5201
# A running time server for the client targets (HOST:PORT); empty: start one in-process.
SERVER ?=
# Extra flags for labnet's clients, e.g. ARGS="--output json" or ARGS="--alpha 0.2".
ARGS ?=

LABNET := $(BUILD_DIR)/labnet/labnet
LABCTL := $(BUILD_DIR)/labctl/labctl
DEMO_FLAGS := --interval 5ms --offset 25ms --drift-ppm 80

.PHONY: all setup configure build test demo four-clients three-clients udp-server local-demo \
        lab-up lab-status lab-down bench format clean tcp-server tcp-demo udp-demo

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

# Clients for each listed scheme: directly against $(SERVER) when set, otherwise through
# the controller of the local lab (brought up when it is not running).
define run_clients
	@if [ -n "$(SERVER)" ]; then \
	  $(LABNET) ts-client --server $(SERVER) --mode $(1) --count $(2) $(DEMO_FLAGS) $(ARGS); \
	else \
	  $(LABCTL) lab status >/dev/null 2>&1 || $(LABCTL) lab up --agents 4 || exit 1; \
	  $(LABCTL) run --clients $(1) --count $(2) $(DEMO_FLAGS) $(ARGS); \
	fi
endef

demo: four-clients
	@echo "The lab stays up: the dashboard is at http://127.0.0.1:8080/; $(LABCTL) results list,"
	@echo "$(LABCTL) agents; stop it with make lab-down."

four-clients: build
	$(call run_clients,raw$(,)ewma$(,)kalman$(,)pid,500)

three-clients: build
	$(call run_clients,ewma$(,)kalman$(,)pid,50)

local-demo: build
	$(LABNET) ts-demo --clients raw,ewma,kalman,pid --count 500 $(DEMO_FLAGS) $(ARGS)

lab-up: build
	$(LABCTL) lab up --agents 4

lab-status: build
	$(LABCTL) lab status

lab-down: build
	$(LABCTL) lab down

udp-server: build
	$(LABNET) ts-server --port $(PORT) $(ARGS)

tcp-server: build
	$(LABNET) tcp-server --port $(TCP_PORT) $(ARGS)

# TCP / UDP traffic through the controller of the local lab (brought up when not running):
# rr with 100 connections, then bulk; UDP paced at 20k datagrams/s. ARGS adds labctl flags.
tcp-demo: build
	@$(LABCTL) lab status >/dev/null 2>&1 || $(LABCTL) lab up --agents 4 || exit 1
	$(LABCTL) run tcp --mode rr --connections 100 --threads 2 --duration 5s $(ARGS)
	$(LABCTL) run tcp --mode bulk --duration 5s $(ARGS)

udp-demo: build
	@$(LABCTL) lab status >/dev/null 2>&1 || $(LABCTL) lab up --agents 4 || exit 1
	$(LABCTL) run udp --rate 20k --length 64 --duration 5s $(ARGS)

bench: build
	bench/run

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD_DIR)

, := ,
