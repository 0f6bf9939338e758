"""Event notifications: targets, bindings of targets to buckets, and (to come) delivery."""
