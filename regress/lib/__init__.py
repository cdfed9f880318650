"""The imaprelayd regress harness: Dovecot, auth service, daemon, clients."""
