"""Protocol drivers: each turns device bytes into ``Sample``s and knows nothing of the platform."""
