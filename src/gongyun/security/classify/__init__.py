"""Industrial data classification (一般 / 重要 / 核心) and its enforcement: clearance, envelope encryption."""
