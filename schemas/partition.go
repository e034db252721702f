package schemas

// Partition returns the partition of a record with this key on a topic of n
// partitions. It is Kafka's default partitioner (murmur2, high bit cleared,
// modulo n) applied to PartitionKey(key), so every record about one user
// lands in one partition whatever its session.
func Partition(key []byte, n int) int {
	return int(murmur2(PartitionKey(key))&0x7fffffff) % n
}

// murmur2 is the 32-bit MurmurHash2 variant of Kafka's
// org.apache.kafka.common.utils.Utils.murmur2, seed 0x9747b28c.
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(data))
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
