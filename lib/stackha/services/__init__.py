"""What stackha knows about each workload, with no OCF in it."""
