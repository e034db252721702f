package gateway

// Buffered is how many records p holds that Kafka has not acknowledged.
func (p *Publisher) Buffered() int64 { return p.client().BufferedProduceRecords() }
