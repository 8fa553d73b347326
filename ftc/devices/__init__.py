"""The devices ftc plans for and runs on: their backends (one record each), and which hardware is here."""
