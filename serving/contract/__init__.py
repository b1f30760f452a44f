"""The request/response contract between exported SavedModels, the servers and the clients.

The layer every side builds on (only ``recsys_base`` is below it). This module holds pure
constants (no TensorFlow, no grpc): the model exporter, the embedded server, the
deployment-config generator and the thin client all read them from here, so a renamed
input is a one-line change. Beside it: :mod:`serving.contract.protodef` (TF Serving's
wire and config messages built without TensorFlow), :mod:`serving.contract.specs` (the
inputs as ``tf.TensorSpec`` input signatures) and :mod:`serving.contract.warmup` (the
warmup record format and the warmup request of each model); the last two need TensorFlow
and are never imported by the thin client. Every exported model has its main signature twice: under
its own name and as ``serving_default``.

Session inputs shared by every signature (``B`` = batch, ``T`` = session width):

====================  =========  ======  ==========================================
input                 dtype      shape   meaning
====================  =========  ======  ==========================================
session_item_ids      DT_STRING  [B, T]  items the shopper interacted with, oldest first
session_event_types   DT_STRING  [B, T]  ``view`` / ``cart`` / ``purchase`` per item
session_timestamps    DT_INT64   [B, T]  unix seconds per event
session_length        DT_INT32   [B]     events in each row (0..T); entries past it are ignored
user_id               DT_STRING  [B]     ``""`` for anonymous shoppers
query                 DT_STRING  [B]     search text, ``""`` when not searching
====================  =========  ======  ==========================================

Why explicit lengths: TF Serving's batching (``pad_variable_length_inputs``) pads each
request's tensors to the batch's widest shape with *that tensor's first element*
(tensorflow_serving/batching/batching_util.cc, ``PadTensor``), so past a row's own events
a model sees copies of a real item, indistinguishable from a revisit. A row's length is a
rank-1 input, which batching never pads; the models read only what it covers, so a
request answers the same alone or batched with longer ones. Rank-2 inputs are at least
one column wide: batching refuses to pad an empty tensor ("Got empty tensor in batch of
non-empty tensors") and fails the whole batch, so the models refuse it alone too.

Signatures:

* ``retrieval`` model, signature ``retrieve``: session inputs + ``k`` (DT_INT32 [B])
  -> ``item_ids`` (DT_STRING [B, max(k)]), ``scores`` (DT_FLOAT [B, max(k)]): the
  log-probability of each item being the session's next click.
* ``ranking`` model, signature ``rank``: session inputs + ``candidate_item_ids``
  (DT_STRING [B, C]) -> ``click_probability``, ``cart_probability``,
  ``purchase_probability`` and ``scores`` (all DT_FLOAT [B, C]).
* ``recommend`` model, signature ``recommend``: session inputs + ``k`` +
  ``exclude_item_ids`` (DT_STRING [B, E]) + ``exclude_length`` (DT_INT32 [B], ids per
  row, 0..E) -> ``item_ids``, ``scores`` as for retrieve.

Outputs are split back along dimension 0 only: a batched row may get more columns than it
asked for (candidates or ``k`` of a wider neighbour). Those columns are blanks (``""``,
``-inf``) or scores of the padding candidates; a client keeps its own ``k`` or ``C``
columns (the thin client does).

``k`` is per row so server-side batching (which concatenates along dimension 0) can
merge requests; a row asking for fewer than ``max(k)`` items gets ``""`` ids and
``-inf`` scores past its own ``k``. ``k`` outside ``1..catalog size`` fails with
INVALID_ARGUMENT naming ``k``.
"""

RETRIEVAL_MODEL = "retrieval"
RANKING_MODEL = "ranking"
RECOMMEND_MODEL = "recommend"
MODELS = (RETRIEVAL_MODEL, RANKING_MODEL, RECOMMEND_MODEL)

SIGNATURES = {
    RETRIEVAL_MODEL: "retrieve",
    RANKING_MODEL: "rank",
    RECOMMEND_MODEL: "recommend",
}
DEFAULT_SIGNATURE = "serving_default"

# The values of ``session_event_types``: what the shopper did with each session item.
VIEW = "view"
CART = "cart"
PURCHASE = "purchase"
EVENT_TYPES = (VIEW, CART, PURCHASE)

SESSION_ITEM_IDS = "session_item_ids"
SESSION_EVENT_TYPES = "session_event_types"
SESSION_TIMESTAMPS = "session_timestamps"
SESSION_LENGTH = "session_length"
USER_ID = "user_id"
QUERY = "query"
K = "k"
EXCLUDE_ITEM_IDS = "exclude_item_ids"
EXCLUDE_LENGTH = "exclude_length"
CANDIDATE_ITEM_IDS = "candidate_item_ids"

# name -> (TF DataType enum name, rank)
SESSION_INPUTS = {
    SESSION_ITEM_IDS: ("DT_STRING", 2),
    SESSION_EVENT_TYPES: ("DT_STRING", 2),
    SESSION_TIMESTAMPS: ("DT_INT64", 2),
    SESSION_LENGTH: ("DT_INT32", 1),
    USER_ID: ("DT_STRING", 1),
    QUERY: ("DT_STRING", 1),
}
INPUTS = {
    RETRIEVAL_MODEL: {**SESSION_INPUTS, K: ("DT_INT32", 1)},
    RANKING_MODEL: {**SESSION_INPUTS, CANDIDATE_ITEM_IDS: ("DT_STRING", 2)},
    RECOMMEND_MODEL: {**SESSION_INPUTS, K: ("DT_INT32", 1), EXCLUDE_ITEM_IDS: ("DT_STRING", 2), EXCLUDE_LENGTH: ("DT_INT32", 1)},
}
# Which rank-1 input says how many entries of each row of a rank-2 input are real.
ROW_LENGTHS = {
    SESSION_ITEM_IDS: SESSION_LENGTH,
    SESSION_EVENT_TYPES: SESSION_LENGTH,
    SESSION_TIMESTAMPS: SESSION_LENGTH,
    EXCLUDE_ITEM_IDS: EXCLUDE_LENGTH,
}

ITEM_IDS = "item_ids"
SCORES = "scores"
CLICK_PROBABILITY = "click_probability"
CART_PROBABILITY = "cart_probability"
PURCHASE_PROBABILITY = "purchase_probability"
OUTPUTS = {
    RETRIEVAL_MODEL: {ITEM_IDS: "DT_STRING", SCORES: "DT_FLOAT"},
    RANKING_MODEL: {
        CLICK_PROBABILITY: "DT_FLOAT",
        CART_PROBABILITY: "DT_FLOAT",
        PURCHASE_PROBABILITY: "DT_FLOAT",
        SCORES: "DT_FLOAT",
    },
    RECOMMEND_MODEL: {ITEM_IDS: "DT_STRING", SCORES: "DT_FLOAT"},
}

# Version labels the deployment config and the clients use for canary releases.
STABLE_LABEL = "stable"
CANARY_LABEL = "canary"

# TF Serving's ports, which the generated deployment, the embedded server and ``recsys
# serve`` all listen on by default.
GRPC_PORT = 8500
REST_PORT = 8501
# The largest gRPC message the server accepts and the client sends or receives by default:
# one limit for both sides, or a batch one side allows would fail on the other.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
