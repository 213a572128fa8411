"""R1's bounds on what one field device pushes, shared by every layer that validates a
camera or an estimate of cameras (devices, the beta application, quotes).

They live at the bottom of the dependency order (billing → licensing → devices → console)
so that each of those imports the one definition; licensing.rules re-exports them."""

# R1: each side at most 7680 pixels, and at most 7680 × 4320 pixels in all.
MAX_SIDE = 7680
MAX_PIXELS = 7680 * 4320
# R1: the service carries at most 8 streams per device.
MAX_CAMERAS_PER_DEVICE = 8
