"""reservemail's benchmark: ``bench/run`` (see README, Performance)."""
