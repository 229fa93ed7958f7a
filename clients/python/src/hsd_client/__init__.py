"""hsd_client: a Python edge client of `hsd serve` over pynng.

Speaks the hsd wire protocol (docs/protocol.md in the hybridsd
repository): builds and signs GENERATE (HMAC-SHA256), receives and checks
RESULT, and hands back the half-denoised latent, the sampler state and the
text embeddings as numpy arrays.

    from hsd_client import Client, GenerateRequest, Key
    key = Key.from_file("keys.txt", "edge-1")
    res = Client("tcp://cloud:7100", key).generate(
        GenerateRequest(prompt="a lighthouse", steps=25, k=10, seed=42))
    res.latent          # float32 [4, 64, 64]
"""

from .auth import Key, load_keys, sign
from .client import Client, random_request_id, verify_result
from .diffusers_finish import (decode_with_diffusers, denoise_with_diffusers,
                               finish_with_diffusers)
from .errors import (HsdError, InvalidRequest, KeyFileError, NoReply, ProtocolError,
                     ServerError, TransportError, VerificationError)
from .replies import CancelAck, Device, Error, Result, Status, decode_reply
from .sampler_state import SamplerState, decode_sampler_state
from .wire import ErrorCode, GenerateRequest, MsgType, Sampler, decode_frame

__version__ = "0.2.0"

__all__ = [
    "CancelAck", "Client", "Device", "Error", "ErrorCode", "GenerateRequest", "HsdError",
    "InvalidRequest", "Key", "KeyFileError", "MsgType", "NoReply", "ProtocolError", "Result",
    "Sampler", "SamplerState", "ServerError", "Status", "TransportError", "VerificationError",
    "decode_frame", "decode_reply", "decode_sampler_state", "decode_with_diffusers",
    "denoise_with_diffusers", "finish_with_diffusers", "load_keys", "random_request_id", "sign",
    "verify_result",
]
