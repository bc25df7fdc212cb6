"""The home of ``cryptography``: TLS certificates, sealed blobs, and (later) document encryption and signatures."""
