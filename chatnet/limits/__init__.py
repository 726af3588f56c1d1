"""What a client may send: frames and bytes a second, failed logins."""
