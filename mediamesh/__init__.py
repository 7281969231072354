"""The `mediamesh` command: the CLI and the no-Docker launcher."""
