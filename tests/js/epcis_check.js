// Reads {"validate": [doc...], "build": {...}} on stdin; writes epcis2.js's verdicts and the documents
// it builds (with epcis2.js's own classes) as JSON.
'use strict';
const crypto = require('node:crypto');
const e = require('epcis2.js');

function withId(event) {
  const o = event.toObject();
  const id = 'ni:///sha-256;' + crypto.createHash('sha256').update(JSON.stringify(o)).digest('hex') + '?ver=CBV2.0';
  return event.setEventID(id);
}

function build(spec) {
  const t0 = spec.time;
  const commission = new e.ObjectEvent()
    .setEventTime(t0)
    .setAction('ADD')
    .setBizStep(e.cbv.bizSteps.commissioning)
    .setDisposition(e.cbv.dispositions.active)
    .setReadPoint(new e.ReadPoint().setId(spec.readPoint))
    .setBizLocation(new e.BizLocation().setId(spec.bizLocation));
  spec.serials.forEach((s) => commission.addEPC(s));
  const transform = new e.TransformationEvent()
    .setEventTime(t0.replace('00:00.000', '10:00.000'))
    .setBizStep(e.cbv.bizSteps.commissioning)
    .setReadPoint(new e.ReadPoint().setId(spec.readPoint))
    .addInputQuantity(new e.QuantityElement().setEpcClass(spec.inputLot).setQuantity(12.5).setUom('KGM'))
    .addOutputQuantity(new e.QuantityElement().setEpcClass(spec.outputLot).setQuantity(100).setUom('H87'));
  const pack = new e.AggregationEvent()
    .setEventTime(t0.replace('00:00.000', '20:00.000'))
    .setAction('ADD')
    .setBizStep(e.cbv.bizSteps.packing)
    .setDisposition(e.cbv.dispositions.in_progress)
    .setParentId(spec.pallet);
  spec.serials.forEach((s) => pack.addChildEPC(s));
  const ship = new e.ObjectEvent()
    .setEventTime(t0.replace('00:00.000', '30:00.000'))
    .setAction('OBSERVE')
    .setBizStep(e.cbv.bizSteps.shipping)
    .setDisposition(e.cbv.dispositions.in_transit)
    .addEPC(spec.pallet)
    .addBizTransaction(new e.BizTransactionElement().setType(e.cbv.businessTransactionTypes.po).setBizTransaction('urn:epcglobal:cbv:bt:0614141000005:PO-1'));
  const deal = new e.TransactionEvent()
    .setEventTime(t0.replace('00:00.000', '40:00.000'))
    .setAction('ADD')
    .setBizStep(e.cbv.bizSteps.shipping)
    .addEPC(spec.pallet)
    .addBizTransaction(new e.BizTransactionElement().setType(e.cbv.businessTransactionTypes.inv).setBizTransaction('urn:epcglobal:cbv:bt:0614141000005:INV-1'));
  const assoc = new e.AssociationEvent()
    .setEventTime(t0.replace('00:00.000', '50:00.000'))
    .setAction('ADD')
    .setBizStep(e.cbv.bizSteps.assembling)
    .setParentId(spec.asset)
    .addChildEPC(spec.serials[0]);
  const doc = new e.EPCISDocument().setCreationDate(t0);
  [commission, transform, pack, ship, deal, assoc].forEach((ev) => doc.addEvent(withId(ev)));
  return doc.toObject();
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const out = {
    validate: (req.validate || []).map((doc) => e.validateEpcisDocument(doc, false)),
    built: req.build ? build(req.build) : null,
  };
  process.stdout.write(JSON.stringify(out));
});
