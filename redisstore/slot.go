package redisstore

import "strings"

// keySlots is how many hash slots a Redis Cluster has.
const keySlots = 16384

// keySlot is the hash slot of key in a Redis Cluster: CRC16 (XMODEM) of
// its hash tag, the part between its first '{' and the next '}' when not
// empty, or else of the whole key, modulo 16384.
func keySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key)) % keySlots
}

// crc16 is CRC-16/XMODEM: polynomial 0x1021, initial value 0, no
// reflection, as the Redis Cluster specification defines it.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
