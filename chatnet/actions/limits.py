"""The bounds of client requests that several action families share
(docs/protocol.md): names, resumes, and how long live messages wait for a
replay."""

#: the longest room or user name a request may give
MAX_NAME = 128
#: names (rooms and conversations together) one resume may ask about
RESUME_NAMES = 100
#: seconds live messages wait for the replay of a resume or a join
RESUME_WAIT = 3.0
