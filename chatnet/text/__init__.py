"""Text processing of chat messages, linear in their length: profanity masking, word cutting, the cost counter."""
