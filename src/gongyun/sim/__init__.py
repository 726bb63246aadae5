"""Virtual factory: real protocol servers (Modbus TCP, OPC UA, Sparkplug B) with plausible signals."""
