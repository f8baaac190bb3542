"""Fault tests (issue 7 item 4): the database going away, a worker killed mid-batch, a bad model
artifact promoted under a running service, an unwritable blob directory."""
