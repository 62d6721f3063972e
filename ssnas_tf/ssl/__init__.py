"""SimCLR pieces: NT-Xent, the projection head, the contrastive model, augmentation."""

# Names are imported from their modules (or lazily from `ssnas_tf`): eager
# re-exports here would make nas <-> ssl imports circular.
