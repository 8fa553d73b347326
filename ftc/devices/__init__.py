"""The devices ftc plans for and runs on: which hardware is here."""
