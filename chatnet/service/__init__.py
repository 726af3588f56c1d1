"""What a node does for its clients, without wire formats: local delivery
(L{delivery}) and the life cycle of a client's session (L{session})."""
