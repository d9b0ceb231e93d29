# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go
BIN := bin

.PHONY: run test test-clocks vet lint bench build migrate clean

run: ## run api + worker + scheduler + relay in one process (SQLite + in-memory Redis by default)
	$(GO) run ./cmd/moim

test: vet ## vet, then every test with the race detector
	@echo "test backends: sqlite$${MOIM_TEST_POSTGRES_URL:+ postgres}$${MOIM_TEST_MYSQL_URL:+ mariadb/mysql};" \
		"redis: $$( [ -n "$$MOIM_TEST_REDIS_URL" ] && echo real redis || echo in-memory miniredis)"
	@[ -n "$$MOIM_TEST_POSTGRES_URL" ] || echo "note: MOIM_TEST_POSTGRES_URL unset: PostgreSQL subtests and the chaos test (cmd/moim) do not run"
	@command -v redis-server >/dev/null || echo "note: redis-server not on PATH: the chaos test and the queue re-registration test do not run"
	@[ -n "$$MOIM_TEST_MYSQL_URL" ] || echo "note: MOIM_TEST_MYSQL_URL unset: MariaDB/MySQL subtests do not run"
	@command -v promtool >/dev/null || echo "note: promtool not on PATH (Debian package prometheus): the alert rules are not checked"
	$(GO) test -race -count=1 ./...

# The packages with date and time rules, and the clocks test-clocks runs them
# on: a zone 14 hours ahead of UTC (every dialect, for the drivers' time
# conversions), then, on SQLite to stay quick, 23:59 on New Year's Eve in
# Seoul and 05:30 UTC (the D-day reminder hour) in a zone with a half-hour
# offset. internal/clocktest fails if a zone or MOIM_TEST_NOW did not take.
CLOCK_PKGS := ./internal/clocktest ./domain/... ./db/... ./jobs/... ./cmd/api/... ./cmd/scheduler/...
SQLITE_ONLY := MOIM_TEST_POSTGRES_URL= MOIM_TEST_MYSQL_URL=
CLOCKS := "TZ=Pacific/Kiritimati" \
	"TZ=Asia/Seoul MOIM_TEST_NOW=2026-12-31T23:59:00+09:00 $(SQLITE_ONLY)" \
	"TZ=America/St_Johns MOIM_TEST_NOW=2026-03-01T05:30:00Z $(SQLITE_ONLY)"

test-clocks: ## the time-sensitive tests again at fixed instants and in odd zones
	@set -e; for c in $(CLOCKS); do \
		echo "== $$c"; env $$c $(GO) test -count=1 $(CLOCK_PKGS); \
	done

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: vet

bench: ## benchmarks (set MOIM_TEST_POSTGRES_URL / MOIM_TEST_REDIS_URL for the real numbers)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	$(GO) run ./cmd/moim/loadping -n 1000
	$(GO) run ./cmd/moim/loadnotify -n 10000
	$(GO) run ./cmd/moim/loadsse -n 1000
	$(GO) run ./cmd/moim/loadmatch -n 20000
	$(GO) run ./cmd/moim/loadmatch -n 20000 -cancel 0.05
	$(GO) run ./cmd/moim/loadapply -c 64 -d 15s
	$(GO) run ./cmd/moim/loadadmit -n 10000 -rooms 1000
	$(GO) run ./cmd/moim/loadrooms -c 64 -d 15s
	$(GO) run ./cmd/moim/loadjoin -c 64 -n 7000
	$(GO) run ./cmd/moim/loadclose -n 10000
	$(GO) run ./cmd/moim/loadworker -n 20000
	$(GO) run ./cmd/moim/loadtasks -helpers 10000 -tasks 1000 -accept-tasks 100 -invites 10

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

migrate:
	$(GO) run ./cmd/moim migrate up

clean:
	rm -rf $(BIN)
