"""Pure scoring core: image decoding and hashing, reference index, text signals, scoring.

Never imports fastapi, sqlalchemy or any other fakeguard package.
"""
