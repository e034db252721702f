// Package schemas is the contract of the Presence topics: their names and
// settings, how record keys are built, how a record's partition is chosen,
// and which identifiers are valid. Record values are the Protobuf messages
// of package presencepb. README.md says the same for producers and consumers
// written in other languages.
package schemas
