"""The project's instruments, not tests: `make bench` (bench.py and the servers it measures),
the instruction counter, the stream-memory tracer, the SDK-alone reference, the mutation runner
and the locust file."""
