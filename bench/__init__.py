"""The benchmarks (run as scripts: python bench/NAME.py); a package so that tests can import their pure parts."""
