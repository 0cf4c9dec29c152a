"""UPS monitoring: one source-independent reading, three ways to get it."""
