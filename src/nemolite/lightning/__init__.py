"""Lightning integration (`from nemolite import lightning as nl`)."""
