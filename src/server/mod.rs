//! The room service's I/O adapter: HTTP, WebSocket, UDP, metrics, config and shutdown.
