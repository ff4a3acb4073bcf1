"""Fleet operations: status across frameworks, systemd units, sd_notify, migrating into a deployment."""
