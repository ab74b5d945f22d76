"""The checks, one module per family; suites/catalogue.py lists them all."""
