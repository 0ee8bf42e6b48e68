"""pyaes (SPEC.md §4): AES-128-CTR encrypt then decrypt a random text with pure-Python pyaes.

read: a random message of `length_of_message` lowercase letters and digits (unseeded);
process: `num_of_iterations` times, encrypt with a fresh CTR cipher (fixed key, pyaes's default
counter: 128-bit big-endian starting at 1) and decrypt with another. With `verify` = "1"
(tests) the result also holds the message and the ciphertext (hex) for an independent check.
"""

import hashlib
import random
import string

import pyaes

KEY = bytes.fromhex("a1f6258c877d5fcd8964484538bfc92c")
ALPHABET = string.ascii_lowercase + string.digits


def handle(params, ctx):
    length = int(params["length_of_message"])
    iterations = int(params["num_of_iterations"])
    message = "".join(random.choice(ALPHABET) for _ in range(length))
    ctx.t1()
    ciphertext = plaintext = b""
    for _ in range(iterations):
        ciphertext = pyaes.AESModeOfOperationCTR(KEY).encrypt(message)
        plaintext = pyaes.AESModeOfOperationCTR(KEY).decrypt(ciphertext)
    ctx.t2()
    result = {
        "length": length,
        "iterations": iterations,
        "roundtrip_ok": plaintext == message.encode("ascii"),
        "ciphertext_sha256": hashlib.sha256(ciphertext).hexdigest(),
    }
    if str(params.get("verify", "0")) == "1":
        result["message"] = message
        result["ciphertext"] = ciphertext.hex()
    return result
