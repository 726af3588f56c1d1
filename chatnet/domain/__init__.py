"""Values and rules of the chat domain: messages and channels, user names, who may moderate what. No I/O."""
