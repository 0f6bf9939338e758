from tests.support.s3 import put_many


async def test_metric_job_completes(admin, s3, bucket):
    await put_many(s3, bucket, ((f"k/{i:04d}", b"x" * i) for i in range(1500)))
    job = await admin.create("METRIC_RECONCILIATION", bucket)
    done = await admin.wait(job["jobId"]["id"])
    assert done["jobState"] == "COMPLETE", done
    assert done["result"]["metrics"]["objectCount"] == 1500
