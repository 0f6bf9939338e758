"""What `jobs watch` draws from a job's counts."""

from __future__ import annotations

from bucketjobs.cli.jobs import progress_counts


def test_a_running_job_that_has_done_all_it_listed_shows_no_total():
    # An inline job counts each page as it lists it: done == total until the listing ends.
    # A full bar (and an ETA of 0) would say it is finished when most of it is not listed.
    assert progress_counts(4998, 4998, ended=False) == (None, "4,998 objects so far")


def test_a_known_remainder_shows_a_bar_and_the_total():
    assert progress_counts(1000, 15000, ended=False) == (15000, "1,000/15,000 objects")


def test_an_ended_job_shows_its_final_counts():
    assert progress_counts(4998, 4998, ended=True) == (4998, "4,998/4,998 objects")
    assert progress_counts(0, 0, ended=True) == (None, "0 objects")


def test_before_anything_is_counted():
    assert progress_counts(0, 0, ended=False) == (None, "0 objects")
