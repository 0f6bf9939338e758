"""The `bucketjobs` command line."""
