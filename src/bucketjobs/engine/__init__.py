"""The job engine: planning into key-range partitions, running them on any worker, cancel."""
