"""srvd's benchmark harness: bench/run is the driver, bench/README.md says what each number
means."""
