package jobs

// TypeImageVariants makes the variants of one uploaded image and marks it
// READY (or FAILED when it cannot be decoded).
const TypeImageVariants = "image:variants"

// ImageVariantsPayload names the image by public id: the object keys carry
// the same id.
type ImageVariantsPayload struct {
	ImageID string `json:"image_id"`
}

// NewImageVariantsTask returns the task the API writes to the outbox with
// a stored original, in the transaction that records the image.
func NewImageVariantsTask(imageID string) (Task, error) {
	// A retry helps only with a storage or database outage: an image
	// that cannot be decoded is FAILED at once.
	return newTask(TypeImageVariants, ImageVariantsPayload{ImageID: imageID}, QueueDefault, 3)
}
