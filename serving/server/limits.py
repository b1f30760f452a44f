"""Bounds on the work one request can cause, shared by the server's config and its request path.

A few bytes of TensorProto can declare any shape (TF's compact encoding repeats the last
value to fill it), so the message size limit alone does not bound memory: a 252-byte
request declaring a [1, 4000000] session once drove the server to 21 GB.
"""

# Far above any real request (64 sessions of 1,000 events are 64,000 elements), far below
# what would exhaust the server's memory; ServerConfig.max_input_elements changes it.
MAX_INPUT_ELEMENTS = 1024 * 1024
