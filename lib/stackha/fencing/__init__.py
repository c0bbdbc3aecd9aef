"""The fence-agent framework: options, meta-data, the power state machine, and the devices."""
