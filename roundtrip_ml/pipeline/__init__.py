"""One experiment: config -> plan -> engine (one generation at a time) -> measure -> store."""
