"""bucketjobs: bulk jobs over S3 buckets behind the VSP One Object Management API."""

__version__ = "0.1.0"
