"""Industrial intrusion detection: passive decoding of Modbus/TCP, OPC UA and MQTT, and detection.

Decoders and detectors here are plain Python with no I/O beyond reading captures and sockets:
the sensor process, the platform's events centre and the CLI are thin layers over them.
"""
