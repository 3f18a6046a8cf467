// Deliberately broken: `y` is declared but never driven (lint must report it).
module undriven(input wire a, output wire y, output wire z);
  wire unused_driver;
  assign z = a;
endmodule
